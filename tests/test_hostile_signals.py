"""The wake-up signal against an application that fights over signals.

A blocked msgsnd/msgrcv stops waiting when sysvmq sends its thread the wake-up
signal (a deadline, close(), a cancellation). These tests are applications that
reset, ignore or handle that signal mid-wait, block every signal, block a
real-time signal they consume themselves, leave no pending-signal allowance at
all, ignore every signal, or set a bad SYSVMQ_WAKEUP_SIGNAL: timeouts and
close() must still work, nothing is killed, and the application's signals stay
the application's.

Whatever may kill or hang the interpreter, or changes process-wide state that
Python cannot restore (every disposition, an rlimit), runs in a child Python. A
child works on the test's `mq` queue (it attaches by id), so a killed child never
leaves a queue behind. Every wait is bounded: calls run in daemon threads joined
with a timeout, children have a subprocess timeout, and a close() that could hang
runs under a watchdog that removes the queue (which ends every blocked call).
"""

import errno
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import pytest
from conftest import child_env, python_command

import sysvmq

DEFAULT = "default"
REALTIME = "SIGRTMIN+3"


class Call:
    """fn(*args, **kwargs) running in a daemon thread, started at once.

    result(within) joins it and gives (what it returned or raised, seconds it took);
    a call still running after `within` seconds is an AssertionError.
    """

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.name = getattr(fn, "__name__", repr(fn))
        self.outcome: Optional[Tuple[Any, float]] = None
        self.native_id = 0
        self.started = threading.Event()

        def run() -> None:
            self.native_id = threading.get_native_id()
            self.started.set()
            start = time.monotonic()
            try:
                value = fn(*args, **kwargs)
            except BaseException as e:  # handed to the test to check
                value = e
            self.outcome = (value, time.monotonic() - start)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def wait_until_blocked(self, within: float = 10.0) -> None:
        """Return once the call sleeps in the kernel: in msgrcv or msgsnd, or between the
        attempts of a call that polls. A fixed delay can be outlasted on a loaded machine,
        and a wake-up sent before the call waits would find nothing to wake."""
        assert self.started.wait(within), f"{self.name} never started"
        deadline = time.monotonic() + within
        while True:
            try:
                with open(f"/proc/self/task/{self.native_id}/wchan") as f:
                    wchan = f.read()
            except FileNotFoundError:
                raise AssertionError(f"{self.name} ended before it waited") from None
            if wchan.startswith("do_msg") or "nanosleep" in wchan:
                return
            assert time.monotonic() < deadline, f"{self.name} never waited ({wchan!r})"
            time.sleep(0.001)

    def result(self, within: float = 5.0) -> Tuple[Any, float]:
        self.thread.join(within)
        if self.thread.is_alive() or self.outcome is None:
            raise AssertionError(f"{self.name} still blocked after {within} s")
        return self.outcome


# ---- in-process helpers ----


def thread_pending() -> Set[int]:
    """The signals pending for the calling thread alone (SigPnd of its /proc status), not
    for the process: only this thread can take them."""
    with open(f"/proc/self/task/{threading.get_native_id()}/status") as f:
        mask = int(next(line for line in f if line.startswith("SigPnd:")).split()[1], 16)
    return {signo for signo in range(1, mask.bit_length() + 1) if mask >> (signo - 1) & 1}


def take_pending(most: int = 1000) -> int:
    """Take every signal pending for the calling thread, which blocks them all: how many
    there were, a queued real-time signal counting each time (up to `most`). The count is
    this thread's own: the SigQ count of /proc is every process's of this user."""
    taken = 0
    while taken < most:
        pending = thread_pending()
        if not pending:
            break
        signal.sigwait(pending)
        taken += 1
    return taken


def _remove(queue_id: int) -> None:
    try:
        sysvmq.MessageQueue.from_id(queue_id).destroy()
    except (sysvmq.QueueRemovedError, sysvmq.QueueNotFoundError):
        pass


@contextmanager
def watchdog(queue_id: int, seconds: float = 5.0) -> Iterator[None]:
    """Remove the queue if the block still runs after `seconds`: every call blocked on it
    then returns (EIDRM), so a close() that cannot wake its waiters ends too."""
    timer = threading.Timer(seconds, _remove, (queue_id,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@contextmanager
def wakeup_signal_restored() -> Iterator[int]:
    """Yield the current wake-up signal; make it the wake-up signal again afterwards."""
    original = sysvmq.wakeup_signal()
    try:
        yield original
    finally:
        sysvmq.set_wakeup_signal(original)


@contextmanager
def taken_by_the_application(signum: int, disposition: Any) -> Iterator[None]:
    """Install `disposition` on `signum` as the application would; afterwards reset it to
    SIG_DFL and make the wake-up signal what it was (sysvmq claims it again)."""
    original = sysvmq.wakeup_signal()
    signal.signal(signum, disposition)
    try:
        yield
    finally:
        signal.signal(signum, signal.SIG_DFL)
        sysvmq.set_wakeup_signal(original)


# ---- child Pythons ----

CHILD_PRELUDE = "\n".join(
    [
        "import json, os, signal, sys, threading, time",
        "from typing import Any, Callable, Optional, Tuple",
        inspect.getsource(Call),
        textwrap.dedent("""
        def report(**facts):
            print("REPORT " + json.dumps(facts), flush=True)

        def attach():
            import sysvmq
            return sysvmq.MessageQueue.from_id(int(sys.argv[1]))
        """),
    ]
)


def describe(done: "subprocess.CompletedProcess[str]") -> str:
    how = f"exit status {done.returncode}"
    if done.returncode < 0:
        how = f"killed by signal {-done.returncode} ({signal.strsignal(-done.returncode)})"
    return f"child {how}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


def run_child(
    code: str,
    args: Sequence[object] = (),
    prefix: Sequence[str] = (),
    env: Optional[Dict[str, str]] = None,
    timeout: float = 30,
) -> "subprocess.CompletedProcess[str]":
    """Run CHILD_PRELUDE + `code` in a new Python; `args` are its sys.argv[1:]."""
    environment = child_env(**(env or {}))
    command = [*prefix, *python_command(CHILD_PRELUDE + textwrap.dedent(code)), *map(str, args)]
    try:
        return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the child still ran after {timeout} s\n--- stdout\n{e.stdout!r}\n--- stderr\n{e.stderr!r}")


def child_report(code: str, args: Sequence[object] = (), **kwargs: Any) -> Dict[str, Any]:
    """Run a child that must exit 0 and report() once: what it reported."""
    done = run_child(code, args, **kwargs)
    assert done.returncode == 0, describe(done)
    reports = [line[len("REPORT ") :] for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert len(reports) == 1, describe(done)
    return json.loads(reports[0])


# ---- R7: SIG_DFL mid-wait ----

RESET_MID_WAIT = """
    import sysvmq
    mq = attach()
    wakeup, which = sys.argv[2], sys.argv[3]
    if wakeup != "default":
        sysvmq.set_wakeup_signal(wakeup)
    signo = sysvmq.wakeup_signal()
    waiting = Call(mq.receive, timeout=0.5)
    waiting.wait_until_blocked()  # in msgrcv, with sysvmq's handler on signo
    if which == "every":
        for s in signal.valid_signals():
            try:
                signal.signal(s, signal.SIG_DFL)
            except (OSError, ValueError):
                pass  # SIGKILL, SIGSTOP
    else:
        signal.signal(signo, signal.SIG_DFL)
    error, elapsed = waiting.result(10)
    report(signo=signo, error=type(error).__name__, elapsed=elapsed, now=sysvmq.wakeup_signal())
"""


@pytest.mark.parametrize("wakeup", [DEFAULT, REALTIME])
def test_resetting_the_wakeup_signal_to_sig_dfl_mid_wait_never_kills(mq, wakeup):
    facts = child_report(RESET_MID_WAIT, [mq.id, wakeup, "wakeup"])
    expected = signal.SIGURG if wakeup == DEFAULT else signal.SIGRTMIN + 3
    assert facts["signo"] == expected
    assert facts["error"] == "QueueTimeoutError" and 0.5 <= facts["elapsed"] < 2.0, facts
    assert facts["now"] == expected  # claimed again before the kick, not replaced


@pytest.mark.parametrize("wakeup", [DEFAULT, REALTIME])
def test_resetting_every_signal_to_sig_dfl_mid_wait_never_kills(mq, wakeup):
    facts = child_report(RESET_MID_WAIT, [mq.id, wakeup, "every"])
    assert facts["error"] == "QueueTimeoutError" and 0.5 <= facts["elapsed"] < 2.0, facts
    assert facts["now"] == facts["signo"]


# ---- R8, R9: the application takes the wake-up signal mid-wait ----


@pytest.mark.parametrize("takeover", ["SIG_IGN", "handler"])
def test_taking_the_wakeup_signal_mid_wait_keeps_the_deadline(mq, takeover):
    signum = sysvmq.wakeup_signal()
    disposition = signal.SIG_IGN if takeover == "SIG_IGN" else (lambda s, f: None)
    waiting = Call(mq.receive, timeout=0.3)
    waiting.wait_until_blocked()
    with taken_by_the_application(signum, disposition):
        error, elapsed = waiting.result(5)
        now = sysvmq.wakeup_signal()
    assert isinstance(error, sysvmq.QueueTimeoutError), error
    assert 0.3 <= elapsed < 2.0
    assert now != signum  # woken with another free signal


def test_an_application_handler_on_the_wakeup_signal_is_never_called(mq):
    signum = sysvmq.wakeup_signal()
    calls: List[int] = []
    other = sysvmq.MessageQueue.from_id(mq.id)
    first = Call(mq.receive, timeout=0.3)
    first.wait_until_blocked()
    with taken_by_the_application(signum, lambda s, f: calls.append(s)):
        error, _ = first.result(5)
        later = [Call(mq.receive, timeout=0.05 * (i + 1)) for i in range(4)]
        later_errors = [call.result(5)[0] for call in later]
        blocked = Call(other.receive)
        blocked.wait_until_blocked()
        with watchdog(mq.id):
            other.close()
        closed, _ = blocked.result(5)
        time.sleep(0.05)  # the main thread runs any Python handler a signal tripped
    assert calls == []
    assert isinstance(error, sysvmq.QueueTimeoutError), error
    assert all(isinstance(e, sysvmq.QueueTimeoutError) for e in later_errors), later_errors
    assert isinstance(closed, sysvmq.QueueClosedError), closed


# ---- R10, R11: threads that block every signal ----


@pytest.mark.parametrize("wakeup", [DEFAULT, "SIGRTMIN+5"])
def test_a_thread_that_blocks_every_signal_between_waits_is_woken_by_close(mq, wakeup):
    other = sysvmq.MessageQueue.from_id(mq.id)
    seen: Dict[str, Any] = {}
    second_wait = threading.Event()

    def waiter() -> None:
        try:
            other.receive(timeout=0.05)
        except sysvmq.QueueTimeoutError as e:
            seen["first"] = e
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        second_wait.set()
        try:
            other.receive()
        except BaseException as e:  # checked below
            seen["second"] = e
        seen["queued"] = take_pending()  # still alive with everything blocked: none flushed

    with wakeup_signal_restored():
        if wakeup != DEFAULT:
            sysvmq.set_wakeup_signal(wakeup)
        waiting = Call(waiter)
        assert second_wait.wait(5)
        waiting.wait_until_blocked()
        start = time.monotonic()
        with watchdog(mq.id):
            other.close()
        closing = time.monotonic() - start
        waiting.result(5)
    assert isinstance(seen.get("first"), sysvmq.QueueTimeoutError), seen
    assert isinstance(seen.get("second"), sysvmq.QueueClosedError), seen
    assert closing < 2.0
    assert seen["queued"] <= 10, seen


def test_changing_the_wakeup_signal_while_a_masked_thread_waits_lets_close_wake_it(mq):
    other = sysvmq.MessageQueue.from_id(mq.id)
    masked = threading.Event()

    def waiter() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        masked.set()
        other.receive()

    with wakeup_signal_restored() as original:
        waiting = Call(waiter)
        assert masked.wait(5)
        waiting.wait_until_blocked()  # in msgrcv with `original` unblocked
        new = signal.SIGRTMIN + 4
        assert new != original and sysvmq.set_wakeup_signal(new) == new
        start = time.monotonic()
        with watchdog(mq.id):
            other.close()
        closing = time.monotonic() - start
        error, _ = waiting.result(5)
    assert isinstance(error, sysvmq.QueueClosedError), error
    assert closing < 2.0


# ---- R12: a real-time signal the application consumes itself ----


def test_a_realtime_signal_the_application_blocks_is_never_taken_nor_swallowed(mq):
    facts = child_report(
        """
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGRTMAX})  # before sysvmq: every thread inherits it
        # The application has SIGURG and SIGWINCH too, so SIGRTMAX would be sysvmq's next choice.
        signal.signal(signal.SIGURG, signal.SIG_IGN)
        signal.signal(signal.SIGWINCH, signal.SIG_IGN)
        import sysvmq
        mq = attach()
        stop = threading.Event()

        def wait_again_and_again():
            timeouts = 0
            while not stop.is_set():
                try:
                    mq.receive(timeout=0.01)
                except sysvmq.QueueTimeoutError:
                    timeouts += 1
            return timeouts

        waiters = [Call(wait_again_and_again) for _ in range(3)]
        for call in waiters:
            call.wait_until_blocked()
        for _ in range(200):
            os.kill(os.getpid(), signal.SIGRTMAX)
        time.sleep(0.2)  # the waiters enter and leave msgrcv many times while all 200 are pending
        received = 0
        while received < 250 and signal.SIGRTMAX in signal.sigpending():  # PyPy has no sigtimedwait
            signal.sigwait([signal.SIGRTMAX])
            received += 1
        stop.set()
        outcomes = [call.result(5)[0] for call in waiters]
        report(received=received, wakeup=sysvmq.wakeup_signal(), outcomes=[repr(o) for o in outcomes])
    """,
        [mq.id],
    )
    assert facts["received"] == 200
    assert facts["wakeup"] not in (signal.SIGRTMAX, signal.SIGURG, signal.SIGWINCH), facts
    assert all(o.isdigit() and int(o) > 0 for o in facts["outcomes"]), facts  # every wait timed out


# ---- R13: no pending-signal allowance (RLIMIT_SIGPENDING = 0) ----


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
@pytest.mark.parametrize("wakeup", [DEFAULT, REALTIME])
def test_timeouts_work_with_no_pending_signal_allowance(mq, wakeup):
    facts = child_report(
        """
        import sysvmq
        mq = attach()
        if sys.argv[2] != "default":
            sysvmq.set_wakeup_signal(sys.argv[2])
        received, receiving = Call(mq.receive, timeout=0.2).result(5)
        mq.set(max_bytes=4)
        mq.send(b"full")
        sent, sending = Call(mq.send, b"x", timeout=0.2).result(5)
        report(receive=type(received).__name__, receiving=receiving, send=type(sent).__name__, sending=sending)
    """,
        [mq.id, wakeup],
        prefix=[shutil.which("prlimit") or "prlimit", "--sigpending=0", "--"],
    )
    assert facts["receive"] == "QueueTimeoutError" and 0.2 <= facts["receiving"] < 2.0, facts
    assert facts["send"] == "QueueTimeoutError" and 0.2 <= facts["sending"] < 2.0, facts


# ---- R14: every signal ignored ----


def test_with_every_signal_ignored_calls_poll_and_timeouts_and_close_still_work(mq):
    facts = child_report(
        """
        for s in signal.valid_signals():
            try:
                signal.signal(s, signal.SIG_IGN)
            except (OSError, ValueError):
                pass  # SIGKILL, SIGSTOP
        import sysvmq
        mq = attach()
        try:
            claimable = sysvmq.wakeup_signal()
        except sysvmq.SysVMQError as e:
            claimable = e.errno

        waiting = Call(mq.receive)
        waiting.wait_until_blocked()
        mq.send(b"late")
        message, _ = waiting.result(5)

        timed_out, timing = Call(mq.receive, timeout=0.2).result(5)

        other = sysvmq.MessageQueue.from_id(mq.id)
        blocked = Call(other.receive)
        blocked.wait_until_blocked()
        start = time.monotonic()
        closed, _ = Call(other.close).result(5)
        woken, _ = blocked.result(5)
        report(claimable=claimable, message=repr(message), timed_out=type(timed_out).__name__, timing=timing,
               closed=repr(closed), woken=type(woken).__name__, waking=time.monotonic() - start)
    """,
        [mq.id],
    )
    assert facts["claimable"] == errno.EBUSY, facts  # no signal at all: the calls really poll
    assert facts["message"] == repr(b"late"), facts
    assert facts["timed_out"] == "QueueTimeoutError" and 0.2 <= facts["timing"] < 2.0, facts
    assert facts["closed"] == "None" and facts["woken"] == "QueueClosedError", facts
    assert facts["waking"] < 2.0, facts


# ---- R15: a bad SYSVMQ_WAKEUP_SIGNAL ----

BOGUS = {"SYSVMQ_WAKEUP_SIGNAL": "bogus"}


def test_a_bad_wakeup_signal_in_the_environment_fails_at_the_first_handle_not_at_import():
    imported = run_child("import sysvmq\n", env=BOGUS)
    assert imported.returncode == 0 and imported.stderr == "", describe(imported)
    facts = child_report(
        """
        import sysvmq
        try:
            made = sysvmq.MessageQueue(sysvmq.IPC_PRIVATE)
        except ValueError as e:
            report(error=str(e))
        else:
            made.destroy()
            report(error=None)
    """,
        env=BOGUS,
    )
    assert facts["error"] is not None, "the handle opened despite SYSVMQ_WAKEUP_SIGNAL=bogus"
    assert "SYSVMQ_WAKEUP_SIGNAL" in facts["error"] and "\n" not in facts["error"], facts


@pytest.mark.parametrize("command", ["ls", "limits"])
def test_a_bad_wakeup_signal_in_the_environment_leaves_commands_that_open_no_handle_alone(command):
    script = os.path.join(os.path.dirname(sys.executable), "sysvmq")
    done = subprocess.run([script, command], env=child_env(**BOGUS), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "Traceback" not in done.stderr, describe(done)


# ---- set_wakeup_signal() against the first open, which reads SYSVMQ_WAKEUP_SIGNAL ----

CUT_INTO_THE_FIRST_OPEN = """
    import linecache
    import sysvmq

    rival = []

    def waits_on_a_lock_of_sysvmq_wakeup(call):
        frame = sys._current_frames().get(call.thread.ident)
        if frame is None or not frame.f_code.co_filename.endswith(os.path.join("sysvmq", "wakeup.py")):
            return False
        return linecache.getline(frame.f_code.co_filename, frame.f_lineno).lstrip().startswith("with ")

    class Environment(dict):
        # The first open has found no signal chosen yet when it reads the variable: here another
        # thread calls set_wakeup_signal(), and the open goes on once that call has returned or
        # is waiting for the open to finish.
        def get(self, name, default=None):
            if name == "SYSVMQ_WAKEUP_SIGNAL" and not rival:
                rival.append(Call(sysvmq.set_wakeup_signal, sys.argv[2]))
                deadline = time.monotonic() + 10
                while rival[0].outcome is None and not waits_on_a_lock_of_sysvmq_wakeup(rival[0]):
                    assert time.monotonic() < deadline, "set_wakeup_signal() neither returned nor waited"
                    rival[0].thread.join(0.001)
            return super().get(name, default)

    os.environ = Environment(os.environ)
    attach()
    chosen, _ = rival[0].result(10)
    report(chosen=chosen, now=sysvmq.wakeup_signal())
"""


def test_set_wakeup_signal_outranks_the_environment_when_it_cuts_into_the_first_open(mq):
    facts = child_report(CUT_INTO_THE_FIRST_OPEN, [mq.id, "SIGRTMIN+5"], env={"SYSVMQ_WAKEUP_SIGNAL": REALTIME})
    explicit = int(signal.SIGRTMIN) + 5
    assert facts == {"chosen": explicit, "now": explicit}, facts


FORK_DURING_THE_FIRST_OPEN = """
    import sysvmq

    inside, leave = threading.Event(), threading.Event()

    class Environment(dict):
        def get(self, name, default=None):  # the first open, in the middle of choosing
            if name == "SYSVMQ_WAKEUP_SIGNAL":
                inside.set()
                leave.wait(10)
            return super().get(name, default)

    os.environ = Environment(os.environ)
    opening = Call(attach)
    assert inside.wait(10)
    pid = os.fork()
    if pid == 0:  # its one thread, which never held the lock: SIGALRM ends it if it blocks
        signal.alarm(10)
        os._exit(0 if sysvmq.set_wakeup_signal(sys.argv[2]) == signal.SIGRTMIN + 5 else 1)
    leave.set()
    opening.result(10)
    report(child=os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_child_forked_while_another_thread_chooses_the_signal_can_choose_one(mq):
    facts = child_report(FORK_DURING_THE_FIRST_OPEN, [mq.id, "SIGRTMIN+5"], env={"SYSVMQ_WAKEUP_SIGNAL": REALTIME})
    assert facts == {"child": 0}, facts


# ---- the signals a thread blocks are never unblocked ----


def test_a_thread_that_blocks_the_wakeup_signal_for_sigwait_gets_every_one(mq):
    # The wake-up signal was chosen (SIGURG) before the application blocked it for sigwait:
    # later waits in threads that block it use another signal, never unblocking SIGURG.
    facts = child_report(
        """
        import sysvmq
        mq = attach()
        try:
            mq.receive(timeout=0.01)
        except sysvmq.QueueTimeoutError:
            pass
        chosen = sysvmq.wakeup_signal()
        signal.pthread_sigmask(signal.SIG_BLOCK, {chosen})  # from here on the application sigwaits it
        waiter = Call(mq.receive, timeout=2)
        got = 0
        for _ in range(10):
            os.kill(os.getpid(), chosen)
            time.sleep(0.02)
            while chosen in signal.sigpending():
                signal.sigwait([chosen])
                got += 1
        error, elapsed = waiter.result(5)
        report(chosen=chosen, got=got, timed_out=isinstance(error, sysvmq.QueueTimeoutError), elapsed=elapsed)
        """,
        [mq.id],
    )
    assert facts["chosen"] == signal.SIGURG
    assert facts["got"] == 10
    assert facts["timed_out"] and facts["elapsed"] < 3


def test_a_thread_that_blocks_every_signal_polls_and_steals_none(mq):
    # The classic signal thread: every signal blocked in every thread, one thread sigwaits.
    facts = child_report(
        """
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        import sysvmq
        mq = attach()
        waiter = Call(mq.receive, 9, timeout=1)
        timed = Call(mq.receive, 10)
        waiter.wait_until_blocked()
        timed.wait_until_blocked()
        for _ in range(5):
            os.kill(os.getpid(), signal.SIGURG)
        got = 0
        while signal.SIGURG in signal.sigpending():
            signal.sigwait([signal.SIGURG])
            got += 1
        error, elapsed = waiter.result(5)
        start = time.monotonic()
        mq.close()  # wakes the polling waiter, whatever it blocks
        closed, _ = timed.result(5)
        report(got=got, timed_out=isinstance(error, sysvmq.QueueTimeoutError), elapsed=elapsed,
               closed=isinstance(closed, sysvmq.QueueClosedError), close_took=time.monotonic() - start)
        """,
        [mq.id],
    )
    assert facts["got"] == 1  # standard signals coalesce: one pending, and sigwait took it
    assert facts["timed_out"] and 1 <= facts["elapsed"] < 3
    assert facts["closed"] and facts["close_took"] < 2


def test_sigwinch_is_left_to_curses(mq):
    # ncurses installs its resize handler only over SIG_DFL: sysvmq never takes SIGWINCH by itself.
    facts = child_report(
        """
        signal.signal(signal.SIGURG, lambda s, f: None)  # the application's
        import sysvmq
        mq = attach()
        try:
            mq.receive(timeout=0.05)
        except sysvmq.QueueTimeoutError:
            pass
        report(chosen=sysvmq.wakeup_signal(), winch=str(signal.getsignal(signal.SIGWINCH)))
        """,
        [mq.id],
    )
    assert facts["chosen"] == signal.SIGRTMAX
    assert facts["winch"] == str(signal.SIG_DFL)
