"""Timeouts, the wake-up signal and close()."""

import errno
import math
import os
import signal
import threading
import time

import pytest
from conftest import child_env, fault_under_blocked_threads, signal_once_blocked, wait_until_waiting

import sysvmq


def timed(call, *args, **kwargs):
    start = time.monotonic()
    try:
        return call(*args, **kwargs), time.monotonic() - start
    except Exception as e:
        return e, time.monotonic() - start


def test_receive_timeout_raises_after_the_timeout(mq):
    error, elapsed = timed(mq.receive, timeout=0.2)
    assert isinstance(error, sysvmq.QueueTimeoutError) and isinstance(error, TimeoutError)
    assert error.errno == errno.ETIMEDOUT
    assert 0.2 <= elapsed < 1.0


def test_send_timeout_on_a_full_queue(mq):
    mq.set(max_bytes=8)
    mq.send(b"12345678")
    error, elapsed = timed(mq.send, b"x", timeout=0.2)
    assert isinstance(error, sysvmq.QueueTimeoutError)
    assert 0.2 <= elapsed < 1.0
    assert mq.stats().count == 1


def test_timeout_zero_tries_once(mq):
    error, elapsed = timed(mq.receive, timeout=0)
    assert isinstance(error, sysvmq.QueueTimeoutError) and elapsed < 0.1
    mq.send(b"here")
    assert mq.receive(timeout=0) == b"here"


def test_message_arriving_during_a_timed_wait_is_returned_promptly(mq):
    threading.Timer(0.1, mq.send, (b"late",)).start()
    value, elapsed = timed(mq.receive, timeout=5)
    assert value == b"late" and elapsed < 2


def test_many_threads_with_different_deadlines(mq):
    timeouts = [0.05 * (i + 1) for i in range(8)]
    results = {}

    def wait(timeout):
        results[timeout] = timed(mq.receive, 100, timeout=timeout)

    threads = [threading.Thread(target=wait, args=(t,)) for t in timeouts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for timeout, (error, elapsed) in results.items():
        assert isinstance(error, sysvmq.QueueTimeoutError)
        assert timeout <= elapsed < timeout + 0.5
    assert len(results) == len(timeouts)


def test_a_signal_during_a_timed_wait_keeps_the_deadline(mq):
    calls = []
    previous = signal.signal(signal.SIGUSR1, lambda s, f: calls.append(time.monotonic()))
    try:
        signal_once_blocked(signal.SIGUSR1, after=0.3)
        error, elapsed = timed(mq.receive, timeout=1.0)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert isinstance(error, sysvmq.QueueTimeoutError)
    assert len(calls) == 1
    assert 1.0 <= elapsed < 1.25  # ends at 1.0 s, not 1.3 s


def test_ctrl_c_during_a_timed_wait(mq):
    signal_once_blocked(signal.SIGINT, after=0.1)
    with pytest.raises(KeyboardInterrupt):
        mq.receive(timeout=5)


def test_fork_then_a_timed_call_in_the_child(mq):
    with pytest.raises(sysvmq.QueueTimeoutError):
        mq.receive(timeout=0.01)  # the parent has armed (and deleted) a timer before
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            start = time.monotonic()
            try:
                mq.receive(timeout=0.2)
            except sysvmq.QueueTimeoutError:
                code = 0 if 0.2 <= time.monotonic() - start < 1.5 else 2
            mq.send(b"child is done", type=7)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert mq.receive(7, timeout=5) == b"child is done"


def test_close_wakes_every_blocked_thread(mq):
    other = sysvmq.MessageQueue.from_id(mq.id)
    other.set(max_bytes=4)
    other.send(b"full")
    calls = [(other.receive, (50,), {})] * 4 + [(other.receive, (51,), {"timeout": 30}), (other.send, (b"more",), {})]
    errors, elapsed = fault_under_blocked_threads(calls, other.close)
    assert elapsed < 2
    assert len(errors) == 6
    assert all(isinstance(e, sysvmq.QueueClosedError) and e.errno == errno.EBADF for e in errors)
    # The queue itself is untouched, and other handles still work.
    assert mq.receive() == b"full"


def test_close_from_the_context_manager_stops_a_worker(mq):
    done = threading.Event()

    def worker(handle):
        try:
            while True:
                handle.receive(123)
        except sysvmq.QueueClosedError:
            done.set()

    with sysvmq.MessageQueue.from_id(mq.id) as handle:
        thread = threading.Thread(target=worker, args=(handle,), daemon=True)
        thread.start()
        wait_until_waiting(thread.native_id)
    assert done.wait(5)


@pytest.mark.parametrize(
    "timeout, error",
    [
        (-1, ValueError),
        (-0.001, ValueError),
        (math.nan, ValueError),
        ("1", TypeError),
        ([1], TypeError),
    ],
)
def test_bad_timeouts_are_refused(mq, timeout, error):
    mq.send(b"sentinel")
    with pytest.raises(error):
        mq.receive(timeout=timeout)
    with pytest.raises(error):
        mq.send(b"x", timeout=timeout)
    assert mq.stats().count == 1


def test_timeout_with_block_false_is_refused(mq):
    with pytest.raises(ValueError):
        mq.receive(block=False, timeout=1)
    with pytest.raises(ValueError):
        mq.send(b"x", flags=sysvmq.IPC_NOWAIT, timeout=1)


def test_infinite_timeout_waits_like_none(mq):
    threading.Timer(0.1, mq.send, (b"x",)).start()
    assert mq.receive(timeout=math.inf) == b"x"


def posix_timers() -> int:
    with open(f"/proc/{os.getpid()}/timers") as f:
        return sum(1 for line in f if line.startswith("ID:"))


def test_no_posix_timer_is_left_behind(mq):
    before = posix_timers()
    for _ in range(300):
        with pytest.raises(sysvmq.QueueTimeoutError):
            mq.receive(timeout=0.0001)
    assert posix_timers() == before


def test_a_wakeup_signal_taken_over_is_left_to_its_new_owner(mq):
    signum = sysvmq.wakeup_signal()
    calls = []
    signal.signal(signum, lambda s, f: calls.append(s))
    try:
        error, elapsed = timed(mq.receive, timeout=0.05)
        assert isinstance(error, sysvmq.QueueTimeoutError) and elapsed < 1
        assert sysvmq.wakeup_signal() != signum and not calls
    finally:
        signal.signal(signum, signal.SIG_DFL)


def test_choosing_the_wakeup_signal(mq):
    original = sysvmq.wakeup_signal()
    try:
        chosen = sysvmq.set_wakeup_signal("SIGRTMIN+3")
        assert chosen == signal.SIGRTMIN + 3 == sysvmq.wakeup_signal()
        with pytest.raises(sysvmq.QueueTimeoutError):
            mq.receive(timeout=0.05)
        previous = signal.signal(signal.SIGUSR2, lambda s, f: None)
        try:
            with pytest.raises(sysvmq.SysVMQError) as info:
                sysvmq.set_wakeup_signal(signal.SIGUSR2)  # a Python handler owns it
            assert info.value.errno == errno.EBUSY
        finally:
            signal.signal(signal.SIGUSR2, previous)
    finally:
        sysvmq.set_wakeup_signal(original)


@pytest.mark.parametrize(
    "bad, error", [(signal.SIGSEGV, ValueError), (0, ValueError), ("SIGNOPE", ValueError), (1.5, TypeError)]
)
def test_unsuitable_wakeup_signals_are_refused(bad, error):
    with pytest.raises(error):
        sysvmq.set_wakeup_signal(bad)


def test_wakeup_signal_from_the_environment(tmp_path):
    import subprocess
    import sys

    code = "import sysvmq, signal; print(sysvmq.wakeup_signal() - signal.SIGRTMIN)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=child_env(SYSVMQ_WAKEUP_SIGNAL="SIGRTMIN+5"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "5"


def test_close_never_sends_a_signal_someone_else_now_handles(mq):
    other = sysvmq.MessageQueue.from_id(mq.id)
    errors = []

    def wait():
        with pytest.raises(sysvmq.QueueClosedError):
            other.receive()
        errors.append("closed")

    thread = threading.Thread(target=wait)
    thread.start()
    wait_until_waiting(thread.native_id)
    signum = sysvmq.wakeup_signal()
    calls = []
    signal.signal(signum, lambda s, f: calls.append(s))
    try:
        other.close()  # wakes the thread with another free signal
        thread.join(5)
        assert not thread.is_alive() and len(errors) == 1 and not calls
    finally:
        signal.signal(signum, signal.SIG_DFL)
