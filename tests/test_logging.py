"""The "sysvmq" logger: each decision of the wake-up machinery appears, once, at debug
level; nothing is printed by default; and logging never raises into the caller, never
recurses and never deadlocks, whatever its handlers do.

Which wake-up signal is chosen is process-wide, so those stories run in a child Python
(fresh process, its own signals) that logs to stderr; the others run here with caplog.
"""

import asyncio
import glob
import logging
import signal
import textwrap
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import pytest
from conftest import run_python

import sysvmq
from sysvmq.tools.output import return_to_queue

CHILD_HELPERS = """
import asyncio, logging, os, signal, sys, threading, time
import sysvmq

def timed_out(mq, **kwargs):
    try:
        mq.receive(timeout=0.02, **kwargs)
    except sysvmq.QueueTimeoutError:
        pass
"""
CHILD_LOGGING = """
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s: %(message)s")
mark = logging.getLogger("test").debug
"""


def run_child(code: str, env: Optional[Dict[str, str]] = None, configure: bool = True, before: str = "") -> List[str]:
    """Run `code` in a child Python that makes its own private queue `mq` (always removed)
    after running `before`: its stderr lines. The child must exit 0."""
    body = before + "\nmq = sysvmq.MessageQueue(sysvmq.IPC_PRIVATE)\ntry:\n"
    body += (
        textwrap.indent(textwrap.dedent(code), "    ")
        + "\nfinally:\n    sysvmq.MessageQueue.from_id(mq.id).destroy()\n"
    )
    source = CHILD_HELPERS + (CHILD_LOGGING if configure else "") + body
    done = run_python(source, **(env or {}))
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines()


def sysvmq_lines(lines: List[str]) -> List[str]:
    return [line[len("sysvmq: ") :] for line in lines if line.startswith("sysvmq: ")]


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    sysvmq.wakeup_signal()  # what earlier tests left noted is reported now, not in this test
    with caplog.at_level(logging.DEBUG, logger="sysvmq"):
        caplog.clear()
        yield caplog


def messages(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sysvmq"]


class Thread:
    """fn() in a daemon thread, started at once; join(within) returns what it returned or raised."""

    def __init__(self, fn: Any) -> None:
        self.outcome: Any = AssertionError("still running")

        def run() -> None:
            try:
                self.outcome = fn()
            except BaseException as e:  # handed to the test
                self.outcome = e

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self, within: float = 10) -> Any:
        self.thread.join(within)
        assert not self.thread.is_alive(), "the call did not finish in time"
        return self.outcome


def until_sleeping_in_msgrcv(within: float = 5) -> None:
    """Until a thread of this process sleeps in msgrcv (what /proc/self/task/*/wchan shows)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for wchan in glob.glob("/proc/self/task/*/wchan"):
            try:
                with open(wchan) as f:
                    if "msgrcv" in f.read():
                        return
            except OSError:
                pass
        time.sleep(0.001)
    pytest.skip("no thread seen in msgrcv (is /proc/*/wchan readable here?)")


# ---- which wake-up signal, and why ----


def test_sigurg_is_claimed_when_the_first_handle_opens_and_said_once():
    lines = run_child(
        """
        mark("opened")
        timed_out(mq)
        sysvmq.MessageQueue.from_id(mq.id)
        mark("done")
        """
    )
    assert lines.index("sysvmq: wake-up signal: claimed SIGURG (the first candidate)") < lines.index("test: opened")
    assert sum("claimed" in line for line in lines) == 1, lines


@pytest.mark.parametrize(
    "disposition, why",
    [("lambda s, f: None", "the application handles it"), ("signal.SIG_IGN", "the application ignores it (SIG_IGN)")],
)
def test_a_realtime_signal_is_claimed_when_the_application_has_sigurg(disposition, why):
    lines = run_child("sysvmq.MessageQueue.from_id(mq.id)", before=f"signal.signal(signal.SIGURG, {disposition})")
    assert sysvmq_lines(lines) == [f"wake-up signal: claimed SIGRTMAX; passed over SIGURG: {why}"], lines


def test_the_claim_at_open_never_takes_a_signal_the_opening_thread_blocks():
    lines = run_child(
        "assert signal.getsignal(signal.SIGURG) == signal.SIG_DFL\nmark('SIGURG untouched')",
        before="signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGURG})  # the application sigwaits it",
    )
    assert lines[0] == "sysvmq: wake-up signal: claimed SIGRTMAX; passed over SIGURG: the thread blocks it", lines
    assert "test: SIGURG untouched" in lines


def test_sysvmq_wakeup_signal_from_the_environment_is_said():
    lines = run_child("timed_out(mq)", env={"SYSVMQ_WAKEUP_SIGNAL": "SIGRTMIN+4"})
    said = sysvmq_lines(lines)
    assert said[0] == "wake-up signal: SIGRTMIN+4, from SYSVMQ_WAKEUP_SIGNAL='SIGRTMIN+4'", lines
    assert not any("claimed" in line for line in said), lines


def test_set_wakeup_signal_is_said(debug_log):
    current = sysvmq.wakeup_signal()
    assert sysvmq.set_wakeup_signal(current) == current
    assert messages(debug_log) == [f"wake-up signal: {sysvmq._log.signal_name(current)}, set by set_wakeup_signal()"]


def test_a_signal_the_application_takes_after_the_claim_is_left_to_it_and_said():
    lines = run_child(
        """
        signal.signal(signal.SIGURG, lambda s, f: None)
        timed_out(mq)
        """
    )
    assert "sysvmq: wake-up signal: moved from SIGURG to SIGRTMAX, the application took SIGURG; " in "\n".join(lines)


def test_a_signal_reset_to_sig_dfl_is_claimed_again_and_said():
    lines = run_child(
        """
        timed_out(mq)
        signal.signal(signal.SIGURG, signal.SIG_DFL)
        timed_out(mq)
        """
    )
    assert sysvmq_lines(lines).count("wake-up signal: SIGURG was reset to SIG_DFL; claimed again") == 1, lines


def test_no_free_signal_is_said_with_the_reasons():
    lines = run_child(
        """
        timed_out(mq)
        """,
        before=(
            "for s in range(signal.SIGRTMIN, signal.SIGRTMAX + 1): signal.signal(s, signal.SIG_IGN)\n"
            "signal.signal(signal.SIGURG, lambda s, f: None)"
        ),
    )
    joined = "\n".join(lines)
    assert (
        "wake-up signal: none is free for this thread (SIGURG: the application handles it; SIGRTMAX, SIGRTMAX-1, SIGRTMAX-2"
    ) in joined, lines
    assert "SIGRTMIN+1, SIGRTMIN: the application ignores it (SIG_IGN)); the first wait that" in joined
    assert "a wait polls" in joined, lines


# ---- waits that cannot sleep in the kernel, the helper thread ----


def test_a_thread_that_blocks_the_wakeup_signal_waits_with_another_and_it_is_said(mq, debug_log):
    current = sysvmq.wakeup_signal()

    def blocked() -> Any:
        signal.pthread_sigmask(signal.SIG_BLOCK, {current})
        return mq.receive(timeout=0.02)

    assert isinstance(Thread(blocked).join(), sysvmq.QueueTimeoutError)
    said = [m for m in messages(debug_log) if m.startswith("a thread that blocks")]
    assert len(said) == 1 and said[0].startswith(
        f"a thread that blocks the wake-up signal {sysvmq._log.signal_name(current)} waits with SIGRTMAX"
    ), said


def test_a_signal_the_application_takes_while_a_thread_waits_is_said():
    lines = run_child(
        """
        tid = []
        def waiting():
            tid.append(threading.get_native_id())
            try:
                mq.receive(timeout=1)
            except sysvmq.QueueTimeoutError:
                pass
        t = threading.Thread(target=waiting)
        t.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until it sleeps in msgrcv, waiting with SIGURG
            if tid and "msgrcv" in open(f"/proc/self/task/{tid[0]}/wchan").read():
                break
            time.sleep(0.001)
        signal.signal(signal.SIGURG, lambda s, f: None)  # the application takes it mid-wait
        t.join()
        """
    )
    said = sysvmq_lines(lines)
    assert "a waiting thread's signal SIGURG: the application took it; woken with SIGRTMAX instead" in said, lines
    assert "wake-up signal: moved from SIGURG to SIGRTMAX, the application took SIGURG" in said, lines


def test_a_thread_that_blocks_every_signal_polls_and_it_is_said(mq, debug_log):
    def blocked() -> Any:
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        return mq.receive(timeout=0.05)

    assert isinstance(Thread(blocked).join(), sysvmq.QueueTimeoutError)
    said = [m for m in messages(debug_log) if m.startswith("a wait polls")]
    assert said == [
        "a wait polls (every 50 µs growing to 2 ms) instead of sleeping in the kernel: no wake-up signal "
        "can reach its thread (it blocks, or the application took, every candidate)"
    ]


def test_the_helper_thread_start_is_said_once():
    lines = run_child("timed_out(mq)\ntimed_out(mq)\nmq.close()")
    said = sysvmq_lines(lines)
    assert said.count("helper thread started: it keeps the deadlines of timed waits that have to block") == 1, lines


def test_events_of_a_wait_that_succeeded_wait_for_the_next_slow_path_and_a_fork_does_not_repeat_them():
    lines = run_child(
        """
        tid = []
        def blocked():
            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            tid.append(threading.get_native_id())
            return mq.receive(9, timeout=10)  # polls: no signal can reach this thread
        t = threading.Thread(target=blocked)
        t.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until it sleeps between two attempts
            if tid and "sleep" in open(f"/proc/self/task/{tid[0]}/wchan").read():
                break
            time.sleep(0.001)
        mq.send(b"", type=9)
        t.join()  # it got its message: no slow path, nothing reported yet
        mark("waited")
        pid = os.fork()
        if pid == 0:
            sysvmq.MessageQueue.from_id(mq.id)  # a slow path in the child: nothing of the parent's to say
            mark("child reported")
            logging.shutdown()
            os._exit(0)
        os.waitpid(pid, 0)
        sysvmq.MessageQueue.from_id(mq.id)
        mark("parent reported")
        """
    )
    waited, child, parent = (lines.index(f"test: {m}") for m in ("waited", "child reported", "parent reported"))
    polls = [i for i, line in enumerate(lines) if line.startswith("sysvmq: a wait polls")]
    assert polls and all(child < i < parent for i in polls), lines
    assert waited < child


# ---- messages put back ----


def test_a_zero_length_message_an_async_wait_took_is_put_back_and_said(mq, debug_log):
    async def main() -> sysvmq.Message:
        receiving = asyncio.ensure_future(mq.receive_message_async(timeout=10))
        await asyncio.get_running_loop().run_in_executor(None, until_sleeping_in_msgrcv)
        mq.send(b"", type=4)
        return await receiving

    assert asyncio.run(main()) == sysvmq.Message(4, b"")
    assert mq.stats().count == 0
    expected = "an async receive's wait took a zero-length message of type 4 and put it back at the end of the queue"
    assert messages(debug_log).count(expected) == 1


def test_the_async_give_back_says_whether_the_message_went_back(mq, debug_log):
    assert mq._return_to_queue(sysvmq.Message(6, b""))
    assert mq.receive_message(block=False) == sysvmq.Message(6, b"")
    mq.set(max_bytes=1)
    mq.send(b"x")  # full: nothing more fits
    assert not mq._return_to_queue(sysvmq.Message(7, b""))
    said = [m for m in messages(debug_log) if "async receive whose caller is gone" in m]
    assert said == [
        f"{mq._describe()}: an async receive whose caller is gone took a message of type 6; put it back at the end of the queue",
        f"{mq._describe()}: an async receive whose caller is gone took a message of type 7; could not put it back: its caller gets it",
    ]


def test_the_command_lines_put_back_is_said(mq, debug_log):
    return_to_queue(mq, sysvmq.Message(3, b"undelivered"))
    assert mq.receive_message(block=False) == sysvmq.Message(3, b"undelivered")
    assert [m for m in messages(debug_log) if "put a message" in m] == [
        f"sysvmq receive: put a message of type 3 (11 bytes) it could not deliver back at the end of {mq!r}"
    ]


# ---- silent by default ----

EVERY_EVENT = """
signal.signal(signal.SIGURG, lambda s, f: None)  # the claim moves to SIGRTMAX
timed_out(mq)
signal.signal(signal.SIGRTMAX, signal.SIG_DFL)  # claimed again
timed_out(mq)
def blocked():
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    timed_out(mq)
t = threading.Thread(target=blocked); t.start(); t.join()
async def waits():
    try:
        await mq.receive_async(timeout=0.02)
    except sysvmq.QueueTimeoutError:
        pass
asyncio.run(waits())
mq._return_to_queue(sysvmq.Message(2, b""))
from sysvmq.tools.output import return_to_queue
return_to_queue(mq, sysvmq.Message(2, b"x"))
mq.close()
"""
SAID = [
    "wake-up signal: claimed SIGURG",
    "wake-up signal: moved from SIGURG to SIGRTMAX",
    "wake-up signal: SIGRTMAX was reset",
    "a wait polls",
    "helper thread started",
    "queue key=",
    "sysvmq receive: put a message",
]


@pytest.mark.parametrize("setup", ["", "logging.basicConfig()"])
def test_nothing_is_printed_by_default(setup):
    unconfigured = (
        "logger = logging.getLogger('sysvmq')\nassert logger.handlers == [] and logger.level == logging.NOTSET\n"
    )
    assert run_child(setup + "\n" + EVERY_EVENT + unconfigured, configure=False) == []


def test_the_same_events_are_said_when_asked_for():
    said = sysvmq_lines(run_child(EVERY_EVENT))
    for start in SAID:
        assert sum(line.startswith(start) for line in said) == 1, (start, said)


# ---- logging never hurts the caller ----


class Raising(logging.Handler):
    def handle(self, record: logging.LogRecord) -> bool:
        raise RuntimeError("a broken handler")


def test_a_handler_that_raises_never_reaches_the_caller(mq, debug_log):
    broken = Raising()
    logging.getLogger("sysvmq").addHandler(broken)
    try:
        current = sysvmq.wakeup_signal()
        assert sysvmq.set_wakeup_signal(current) == current
        with pytest.raises(sysvmq.QueueTimeoutError):
            mq.receive(timeout=0.01)
        return_to_queue(mq, sysvmq.Message(1, b"kept"))
        assert mq.receive(block=False) == b"kept"
        sysvmq.MessageQueue.from_id(mq.id).close()
    finally:
        logging.getLogger("sysvmq").removeHandler(broken)


def test_a_handler_that_uses_sysvmq_does_not_recurse(mq, debug_log):
    sink = sysvmq.MessageQueue(sysvmq.IPC_PRIVATE)
    emitted: List[str] = []

    class ToQueue(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            emitted.append(record.getMessage())
            sysvmq.MessageQueue.from_id(sink.id).close()  # opens and closes a handle: both report
            try:
                sink.receive(99, block=False)  # fails: a slow path that reports too
            except sysvmq.QueueEmptyError:
                pass
            sink.send(record.getMessage())

    def blocked() -> Any:
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        return mq.receive(timeout=0.05)

    handler = ToQueue()
    logging.getLogger("sysvmq").addHandler(handler)
    try:
        current = sysvmq.wakeup_signal()
        assert Thread(lambda: sysvmq.set_wakeup_signal(current)).join() == current  # a deadlock fails, not hangs
        assert isinstance(Thread(blocked).join(), sysvmq.QueueTimeoutError)
    finally:
        logging.getLogger("sysvmq").removeHandler(handler)
    try:
        queued = sink.receive_many(100, block=False)
    finally:
        sink.destroy()
    assert [q.decode() for q in queued] == emitted
    assert emitted.count(f"wake-up signal: {sysvmq._log.signal_name(current)}, set by set_wakeup_signal()") == 1
    assert sum(m.startswith("a wait polls") for m in emitted) == 1, emitted


def test_a_signal_handler_that_uses_sysvmq_during_a_report_neither_deadlocks_nor_raises():
    lines = run_child(
        """
        other = sysvmq.MessageQueue.from_id(mq.id)
        signal.signal(signal.SIGUSR1, lambda s, f: other.close())  # close() reports too

        class Interrupted(logging.Handler):
            def emit(self, record):
                os.kill(os.getpid(), signal.SIGUSR1)  # its Python handler runs inside this emit
                sys.stderr.write("sysvmq: " + record.getMessage() + "\\n")

        logging.getLogger("sysvmq").addHandler(Interrupted())
        logging.getLogger("sysvmq").propagate = False
        def blocked():
            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            timed_out(mq)
        t = threading.Thread(target=blocked); t.start(); t.join()
        timed_out(mq)  # in the main thread: the signal handler runs during this report
        assert other.closed
        mark("done")
        """
    )
    said = sysvmq_lines(lines)
    assert "test: done" in lines, lines
    assert sum(line.startswith("a wait polls") for line in said) == 1, lines
    assert sum(line.startswith("helper thread started") for line in said) == 1, lines


def raising_in_workers(raised: str) -> str:
    """Child code: a sysvmq log handler that raises `raised` in every thread but the main one."""
    return textwrap.dedent(
        f"""
        class Raises(logging.Handler):
            def emit(self, record):
                if threading.current_thread() is not threading.main_thread():
                    raise {raised}("from a handler")

        logging.getLogger("sysvmq").addHandler(Raises())
        """
    )


@pytest.mark.parametrize("raised", ["SystemExit", "KeyboardInterrupt"])
@pytest.mark.parametrize("runner", ["asyncio", "trio"])
def test_a_handler_that_raises_base_exceptions_in_a_worker_never_stalls_the_call(runner, raised):
    # The worker reports after its wait; a handler raising there must not keep it from
    # handing over its outcome (the awaiting call would wait for good, even past a timeout).
    lines = run_child(
        """
        import trio

        async def on_asyncio():
            async def later():
                await asyncio.sleep(0.2)
                mq.send(b"")  # zero-length: the worker's wait takes it and puts it back, which it reports
            sender = asyncio.ensure_future(later())
            got = await asyncio.wait_for(mq.receive_message_async(), 20)
            await sender
            return got

        async def on_trio():
            async def later():
                await trio.sleep(0.2)
                mq.send(b"")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(later)
                with trio.fail_after(20):
                    return await mq.receive_message_async()

        got = asyncio.run(on_asyncio()) if RUNNER == "asyncio" else trio.run(on_trio)
        mark("got %r" % (got,))
        """,
        before=raising_in_workers(raised) + f"RUNNER = {runner!r}\n",
    )
    assert "test: got Message(type=1, data=b'')" in lines, lines


def test_a_handler_that_sets_the_wakeup_signal_logs_once(mq, debug_log):
    # set_wakeup_signal() logs; a handler that calls it must not log again from inside.
    current = sysvmq.wakeup_signal()
    emitted: List[str] = []

    class Resets(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            emitted.append(record.getMessage())
            sysvmq.set_wakeup_signal(current)

    handler = Resets()
    logging.getLogger("sysvmq").addHandler(handler)
    try:
        assert sysvmq.set_wakeup_signal(current) == current
    finally:
        logging.getLogger("sysvmq").removeHandler(handler)
    assert emitted == [f"wake-up signal: {sysvmq._log.signal_name(current)}, set by set_wakeup_signal()"]


@pytest.mark.parametrize("raised", ["SystemExit", "KeyboardInterrupt"])
def test_a_handler_that_raises_in_a_worker_never_replaces_the_calls_outcome(raised):
    lines = run_child(
        """

        async def main():
            try:
                await asyncio.wait_for(mq.receive_async(timeout=0.05), 20)
            except sysvmq.QueueTimeoutError:
                return "timed out"

        mark(asyncio.run(main()))
        """,
        before=raising_in_workers(raised),
    )
    assert "test: timed out" in lines, lines
