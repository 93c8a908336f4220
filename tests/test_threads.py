"""Threads and signals: blocking calls release the GIL, wake on removal, honour PEP 475."""

import signal
import threading
import time

import pytest
from conftest import signal_once_blocked, signals_then, wait_until_waiting

import sysvmq


def in_thread(target, *args):
    """`target(*args)` in a new thread, once that call sleeps in msgrcv or msgsnd."""
    result = {}

    def run():
        try:
            result["value"] = target(*args)
        except BaseException as e:
            result["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_until_waiting(thread.native_id)
    return thread, result


def test_queue_removed_while_a_thread_waits(mq):
    thread, result = in_thread(mq.receive)
    assert thread.is_alive()
    mq.destroy()
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(result["error"], sysvmq.QueueRemovedError)


def test_queue_removed_while_a_sender_waits(mq):
    mq.set(max_bytes=4)
    mq.send(b"full")
    thread, result = in_thread(mq.send, b"more")
    assert thread.is_alive()
    mq.destroy()
    thread.join(5)
    assert isinstance(result["error"], sysvmq.QueueRemovedError)


def test_a_blocked_thread_does_not_stop_others(mq):
    thread, result = in_thread(mq.receive, 99)
    start = time.monotonic()
    for i in range(2000):
        mq.send(b"%d" % i, type=1)
        assert mq.receive(1) == b"%d" % i
    assert time.monotonic() - start < 5
    assert thread.is_alive()
    mq.send(b"release", type=99)
    thread.join(5)
    assert result["value"] == b"release"


def test_one_handle_shared_by_many_threads(mq):
    # Each thread sends and receives its own type with its own payloads on one handle;
    # any shared buffer would mix them up.
    rounds, workers = 400, 8
    errors = []

    def worker(n):
        mtype = n + 1
        for i in range(rounds):
            data = bytes([n]) * (1 + (i * 37 + n) % 2000)
            mq.send(data, type=mtype)
            got = mq.receive(mtype)
            if got != data:
                errors.append((n, i, len(got), len(data)))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert mq.stats().count == 0


def test_sigint_interrupts_a_blocking_receive(mq):
    start = time.monotonic()
    signal_once_blocked(signal.SIGINT, after=0.2)
    with pytest.raises(KeyboardInterrupt):
        mq.receive()
    assert 0.15 < time.monotonic() - start < 3
    mq.send(b"still works")
    assert mq.receive() == b"still works"


def test_handler_that_returns_lets_the_receive_go_on(mq):
    with signals_then(signal.SIGUSR1, 3, lambda: mq.send(b"after three signals", type=4)) as calls:
        assert mq.receive_message() == sysvmq.Message(4, b"after three signals")
    assert calls == [signal.SIGUSR1] * 3


def test_the_gil_is_released_while_blocked(mq):
    thread, result = in_thread(mq.receive, 5)
    start = time.monotonic()
    total = 0
    while time.monotonic() - start < 0.2:
        total += sum(range(1000))  # pure Python work runs while the other thread sleeps in msgrcv
    assert total > 0 and thread.is_alive()
    mq.send(b"go", type=5)
    thread.join(5)
    assert result["value"] == b"go"
