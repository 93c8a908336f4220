import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple, Union

import pytest

import sysvmq

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def queue_ids() -> Set[int]:
    """The msqids the kernel holds now: /proc/sysvipc/msg on Linux, `ipcs -q` elsewhere."""
    if os.path.exists("/proc/sysvipc/msg"):
        with open("/proc/sysvipc/msg") as f:
            next(f)
            return {int(line.split()[1]) for line in f if line.strip()}
    out = subprocess.run(["ipcs", "-q"], capture_output=True, text=True, check=True, env=child_env()).stdout
    return {
        int(fields[1])
        for fields in (line.split() for line in out.splitlines())
        if len(fields) > 2 and fields[1].lstrip("-").isdigit()
    }


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="run the reliability soak (load and fault mixes) this long; it prints its counts",
    )
    parser.addoption(
        "--operations",
        type=int,
        default=1_000_000,
        metavar="N",
        help="operations per path in the memory-flatness tests",
    )


@pytest.fixture
def soak_seconds(request: pytest.FixtureRequest) -> float:
    return float(request.config.getoption("--soak"))


@pytest.fixture
def operations(request: pytest.FixtureRequest) -> int:
    return int(request.config.getoption("--operations"))


@pytest.fixture(autouse=True, scope="session")
def run_from_the_tests_folder() -> Iterator[None]:
    """Child Pythons (`-c`, `-m`) put their working folder first on sys.path: keep the
    source tree's uncompiled sysvmq/ out of it, so they import the installed package."""
    previous = os.getcwd()
    os.chdir(HERE)
    yield
    os.chdir(previous)


@pytest.fixture(autouse=True)
def no_leaked_queues() -> Iterator[None]:
    """Fail any test after which a queue exists that did not exist before it.

    The comparison is machine-wide (/proc/sysvipc/msg), so run one suite at a time per IPC
    namespace. It never removes a queue itself: one it cannot attribute to the test could
    belong to another program.
    """
    before = queue_ids()
    yield
    leaked = sorted(queue_ids() - before)
    assert not leaked, f"a queue appeared during the test and is still there: msqids {leaked} (ipcrm -q ID)"


def _destroy(mq: sysvmq.MessageQueue) -> None:
    try:
        sysvmq.MessageQueue.from_id(mq.id).destroy()
    except (sysvmq.QueueRemovedError, sysvmq.QueueNotFoundError):
        pass


@pytest.fixture
def mq() -> Iterator[sysvmq.MessageQueue]:
    """A new private queue, always removed afterwards."""
    queue = sysvmq.MessageQueue(sysvmq.IPC_PRIVATE)
    try:
        yield queue
    finally:
        _destroy(queue)


@pytest.fixture
def make_queue() -> Iterator["QueueFactory"]:
    made = []

    def factory(*args: object, **kwargs: object) -> sysvmq.MessageQueue:
        queue = sysvmq.MessageQueue(*args, **kwargs)  # type: ignore[arg-type]
        made.append(queue)
        return queue

    try:
        yield factory
    finally:
        for queue in made:
            _destroy(queue)


QueueFactory = object


@pytest.fixture
def free_key() -> int:
    """A random unsigned key (high bit set half the time) that names no queue now."""
    existing = {q.key for q in sysvmq.queues()}
    while True:
        key = random.randrange(1, 1 << 32)
        if key not in existing:
            return key


@pytest.fixture(scope="session")
def limits() -> sysvmq.Limits:
    return sysvmq.limits()


def child_env(**extra: str) -> Dict[str, str]:
    """The environment of a command a test starts (the CLI, a shell, tmux): what a user's
    session gives it, not this process's, which may hold settings users do not have
    (PYTHONUNBUFFERED=1 hides output left unflushed at exit). Coverage's and the
    sanitizers' variables pass, so that the child runs under what the suite runs under.
    Then `extra`."""
    env = {"PATH": os.environ.get("PATH", os.defpath), "LANG": "C.UTF-8"}
    for name in ("HOME", "TERM", "TMPDIR"):  # tmux, zsh and fish look for them
        if name in os.environ:
            env[name] = os.environ[name]
    # What the harness itself runs the suite under: coverage, and the sanitizer stages of
    # .ci/run (an instrumented module needs its runtime preloaded in every process).
    harness = ("COVERAGE_", "ASAN_", "TSAN_", "LD_PRELOAD")
    env.update({name: value for name, value in os.environ.items() if name.startswith(harness)})
    env.update(extra)
    return env


def python_command(code: str) -> list:
    return [sys.executable, "-c", code]


def run_python(code: str, *args: object, timeout: float = 60, **env: str) -> "subprocess.CompletedProcess[str]":
    """Run `code` in a child Python with `args` as its arguments and child_env(**env) as its
    environment; its output captured as text, the child killed after `timeout` seconds."""
    return subprocess.run(
        [*python_command(code), *map(str, args)], env=child_env(**env), capture_output=True, text=True, timeout=timeout
    )


def wait_until(condition: Callable[[], object], what: str, within: float = 10.0) -> None:
    """Return once `condition()` holds; fail, naming `what`, after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        time.sleep(0.001)


def waiting_threads(pid: Union[int, str] = "self") -> List[int]:
    """The threads of process `pid` that sleep in the kernel's msgrcv or msgsnd (what their
    /proc wchan shows), by native id."""
    waiting = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                if f.read().startswith("do_msg"):
                    waiting.append(int(tid))
        except FileNotFoundError:  # the thread ended meanwhile
            pass
    return waiting


def wait_until_waiting(native_id: Optional[int] = None, *, pid: Union[int, str] = "self", within: float = 10.0) -> None:
    """Return once thread `native_id` of this process (or, with `pid` alone, any thread of
    process `pid`) sleeps in msgrcv or msgsnd. A fixed delay can be outlasted on a loaded
    machine: what comes next (a message, a signal, a close) would find the call not yet
    waiting, and the test would pass without testing its story."""
    if native_id is None:
        wait_until(lambda: waiting_threads(pid), f"no thread of process {pid} waits in msgrcv or msgsnd", within)
    else:
        wait_until(
            lambda: native_id in waiting_threads(), f"thread {native_id} never waited in msgrcv or msgsnd", within
        )


def fault_under_blocked_threads(
    calls: List[Tuple[Callable[..., Any], tuple, dict]],
    fault: Callable[[], None],
    within: float = 5.0,
) -> Tuple[List[BaseException], float]:
    """Start a thread per blocking call, wait until each sleeps in msgrcv or msgsnd, inject
    `fault`, and wait for them.

    Returns what each call raised (a call that returned counts as an AssertionError) and
    how many seconds the threads took to finish after the fault.
    """
    outcomes: List[BaseException] = []

    def run(fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        try:
            fn(*args, **kwargs)
            outcomes.append(AssertionError(f"{fn.__name__} returned instead of failing"))
        except BaseException as e:  # collected for the test to check
            outcomes.append(e)

    threads = [threading.Thread(target=run, args=call) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        wait_until_waiting(t.native_id)
    start = time.monotonic()
    fault()
    for t in threads:
        t.join(within)
    return outcomes, time.monotonic() - start


def signal_once_blocked(signum: int, after: float = 0.0, within: float = 10.0) -> threading.Thread:
    """A started thread that sends `signum` to the calling thread once that thread sleeps in
    msgsnd or msgrcv, and no sooner than `after` seconds from now (at the latest `within`
    seconds from now). A signal that came before the call entered the kernel would wait for
    it to leave, as any signal for Python code does: a fixed delay can be outlasted on a
    loaded machine."""
    ident, native_id = threading.get_ident(), threading.get_native_id()
    start = time.monotonic()

    def kill() -> None:
        while time.monotonic() < start + within:
            if native_id in waiting_threads() and time.monotonic() >= start + after:
                break
            time.sleep(0.001)
        signal.pthread_kill(ident, signum)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


@contextmanager
def signals_then(signum: int, times: int, then: Callable[[], None]) -> Iterator[List[int]]:
    """While the block runs: a counting handler for `signum`; another thread sends it to
    this thread `times` times, each time once this thread sleeps in msgrcv or msgsnd and the
    handler ran for the one before (two pending signals of one number are one), then calls
    `then()` once it waits again. Yields the handler's calls."""
    calls: List[int] = []
    previous = signal.signal(signum, lambda s, f: calls.append(s))
    target, native_id = threading.get_ident(), threading.get_native_id()
    failed: List[AssertionError] = []

    def poke() -> None:
        try:
            for sent in range(1, times + 1):
                wait_until_waiting(native_id)
                signal.pthread_kill(target, signum)
                wait_until(lambda sent=sent: len(calls) >= sent, f"the handler never ran for signal {sent}")
            wait_until_waiting(native_id)
        except AssertionError as e:  # raised in the block instead, which then() still ends
            failed.append(e)
        finally:
            then()

    helper = threading.Thread(target=poke)
    helper.start()
    try:
        yield calls
    finally:
        helper.join()
        signal.signal(signum, previous)
    if failed:
        raise failed[0]


def outcome(call: Callable[[], Any]) -> str:
    """What a call did, in the stdlib's terms: 'ok', 'Empty', 'Full' or the exception's class."""
    try:
        call()
    except queue.Empty:
        return "Empty"
    except queue.Full:
        return "Full"
    except Exception as e:
        return type(e).__name__
    return "ok"
