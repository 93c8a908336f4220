"""send_many, receive_many, receive_into and peek."""

import array
import errno
import threading
import time

import pytest
from conftest import wait_until_waiting

import sysvmq


def test_send_many_then_receive_many_round_trip(mq):
    messages = [b"a", b"", b"\x00\x01", bytearray(b"ba"), "str", memoryview(b"xyz")[1:]]
    assert mq.send_many(messages, type=4) == 6
    assert mq.stats().count == 6
    assert mq.receive_many(10) == [b"a", b"", b"\x00\x01", b"ba", b"str", b"yz"]
    assert mq.stats().count == 0


def test_send_many_of_nothing_sends_nothing(mq):
    assert mq.send_many([]) == 0
    assert mq.send_many(iter(())) == 0


def test_receive_many_respects_max_count_and_type(mq):
    for t in (1, 2, 1, 3, 1):
        mq.send(b"%d" % t, type=t)
    assert mq.receive_many(2, 1) == [b"1", b"1"]
    assert mq.receive_many(10, -2) == [b"1", b"2"]
    with pytest.raises(sysvmq.QueueEmptyError):
        mq.receive_many(10, 3, exclude=True, block=False)
    assert mq.receive_many(10) == [b"3"]


def test_receive_many_blocks_only_for_the_first(mq):
    threading.Timer(0.1, mq.send_many, ([b"1", b"2"],)).start()
    start = time.monotonic()
    first = mq.receive_many(5)
    assert time.monotonic() - start < 3
    rest = mq.receive_many(5, timeout=5) if len(first) < 2 else []  # the second may come a moment later
    assert first + rest == [b"1", b"2"]
    with pytest.raises(sysvmq.QueueEmptyError):
        mq.receive_many(5, block=False)
    with pytest.raises(sysvmq.QueueTimeoutError):
        mq.receive_many(5, timeout=0.05)


def test_receive_many_leaves_a_too_big_message_for_the_next_call(mq):
    small = sysvmq.MessageQueue.from_id(mq.id, max_size=4)
    mq.send_many([b"1", b"22", b"toolarge", b"4"])
    assert small.receive_many(10) == [b"1", b"22"]
    with pytest.raises(sysvmq.MessageTooLargeError):
        small.receive_many(10)
    assert mq.stats().count == 2
    assert small.receive_many(10, truncate=True) == [b"tool", b"4"]


def test_receive_many_stops_when_its_buffer_is_full(mq, monkeypatch):
    # The batch buffer holds BATCH_BYTES; what does not fit waits for the next call.
    from sysvmq._binding import handle as _lowlevel

    monkeypatch.setattr(_lowlevel, "BATCH_BYTES", 64)
    small = sysvmq.MessageQueue.from_id(mq.id, max_size=16)
    mq.send_many([b"%02d" % i for i in range(10)])
    first = small.receive_many(100)
    assert 1 <= len(first) < 10
    rest = small.receive_many(100)
    while len(first) + len(rest) < 10:
        rest += small.receive_many(100)
    assert first + rest == [b"%02d" % i for i in range(10)]


def test_send_many_failure_reports_how_many_went(mq, limits):
    mq.set(max_bytes=10)
    with pytest.raises(sysvmq.QueueFullError) as info:
        mq.send_many([b"12345", b"12345", b"x"], block=False)
    assert info.value.sent == 2
    assert mq.receive_many(10) == [b"12345", b"12345"]
    with pytest.raises(sysvmq.MessageTooLargeError) as info:
        mq.send_many([b"1", b"x" * 11])  # the second could never fit: refused, not waited for
    assert info.value.sent == 1
    assert mq.receive_many(10) == [b"1"]


def test_send_many_timeout_covers_the_batch(mq):
    mq.set(max_bytes=4)
    start = time.monotonic()
    with pytest.raises(sysvmq.QueueTimeoutError) as info:
        mq.send_many([b"ab", b"cd", b"ef"], timeout=0.2)
    assert info.value.sent == 2
    assert 0.2 <= time.monotonic() - start < 1.5


@pytest.mark.parametrize("bad, error", [([b"ok", 5], TypeError), ([b"ok", None], TypeError)])
def test_send_many_refuses_bad_messages_before_sending_any(mq, bad, error):
    with pytest.raises(error):
        mq.send_many(bad)
    assert mq.stats().count == 0


@pytest.mark.parametrize("mtype, error", [(0, ValueError), (1.5, TypeError), (2**63, OverflowError)])
def test_send_many_refuses_bad_types(mq, mtype, error):
    with pytest.raises(error):
        mq.send_many([b"x"], type=mtype)
    assert mq.stats().count == 0


@pytest.mark.parametrize("count, error", [(0, ValueError), (-1, ValueError), (2**64, OverflowError), (1.0, TypeError)])
def test_receive_many_refuses_bad_counts(mq, count, error):
    with pytest.raises(error):
        mq.receive_many(count)


@pytest.mark.parametrize("make", [bytearray, lambda n: memoryview(bytearray(n)), lambda n: array.array("B", bytes(n))])
def test_receive_into_writable_buffers(mq, make):
    buf = make(16)
    mq.send(b"hello\x00", type=9)
    assert mq.receive_into(buf) == (6, 9)
    assert bytes(buf[:6]) == b"hello\x00"


@pytest.mark.parametrize("bad", [b"readonly", memoryview(b"readonly"), "str", 5, memoryview(bytearray(8))[::2]])
def test_receive_into_refuses_unwritable_buffers_before_the_call(mq, bad):
    mq.send(b"kept")
    with pytest.raises(TypeError):
        mq.receive_into(bad)
    assert mq.receive() == b"kept"  # EFAULT would have dropped it


def test_receive_into_too_small_buffer_leaves_the_message(mq):
    buf = bytearray(3)
    mq.send(b"abcdef")
    with pytest.raises(sysvmq.MessageTooLargeError):
        mq.receive_into(buf)
    assert mq.receive_into(buf, truncate=True) == (3, 1)
    assert buf == b"abc"


def test_peek_copies_without_dequeuing(mq):
    mq.send(b"first", type=1)
    mq.send(b"second", type=2)
    assert mq.peek() == sysvmq.Message(1, b"first")
    assert mq.peek(1) == sysvmq.Message(2, b"second")
    with pytest.raises(sysvmq.QueueEmptyError) as info:
        mq.peek(2)
    assert info.value.errno == errno.ENOMSG
    assert mq.stats().count == 2
    assert mq.receive() == b"first"


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (2**63, OverflowError), (1.0, TypeError)])
def test_peek_refuses_bad_index(mq, bad, error):
    with pytest.raises(error):
        mq.peek(bad)


def test_batches_and_single_calls_share_one_handle_across_threads(mq):
    errors = []

    def worker(n):
        for i in range(100):
            batch = [bytes([n]) * (i % 50 + 1)] * 5
            mq.send_many(batch, type=n + 1)
            got = []
            while len(got) < 5:
                got += mq.receive_many(5 - len(got), n + 1)
            if got != batch:
                errors.append(n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and mq.stats().count == 0


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 1000])
def test_receive_many_cuts_batches_of_one_size(mq, size):
    # Equal-sized messages are cut by one struct layout; every alignment gap must match C's.
    count = min(40, mq.stats().max_bytes // max(size, 1))
    messages = [bytes([i]) * size for i in range(count)]
    mq.send_many(messages)
    assert mq.receive_many(count) == messages


def test_receive_many_cuts_batches_of_mixed_sizes(mq):
    messages = [bytes([i]) * (i % 13) for i in range(50)] + [b"x" * 100, b"", b"y"]
    mq.send_many(messages)
    got = []
    while len(got) < len(messages):
        got += mq.receive_many(7)
    assert got == messages


def test_receive_many_keeps_batches_of_one_size_apart_by_count(mq):
    for count in (1, 2, 3, 64, 2, 1):
        messages = [b"%02d" % i for i in range(count)]
        mq.send_many(messages)
        assert mq.receive_many(count) == messages


def test_a_batch_that_waits_for_room_sends_everything_once_in_order(mq):
    # The batch registers as a waiter once and then blocks on each message in turn.
    mq.set(max_bytes=24)
    messages = [b"%07d" % i for i in range(300)]
    got: list = []

    def consume() -> None:
        while len(got) < len(messages):
            got.extend(mq.receive_many(2, timeout=10))

    reader = threading.Thread(target=consume)
    reader.start()
    assert mq.send_many(messages, timeout=30) == 300
    reader.join(10)
    assert got == messages


def test_close_stops_a_batch_waiting_for_room_and_counts_what_went(mq):
    mq.set(max_bytes=8)
    handle = sysvmq.MessageQueue.from_id(mq.id)
    outcome: dict = {}

    def send() -> None:
        try:
            handle.send_many([b"1234", b"5678", b"9abc", b"defg"])
        except sysvmq.SysVMQError as e:
            outcome["error"] = e

    sender = threading.Thread(target=send)
    sender.start()
    wait_until_waiting(sender.native_id)  # two sent, the third waits for room
    assert mq.stats().count == 2
    start = time.monotonic()
    handle.close()
    sender.join(5)
    assert not sender.is_alive() and time.monotonic() - start < 2
    assert isinstance(outcome["error"], sysvmq.QueueClosedError)
    assert outcome["error"].sent == 2
    assert mq.receive_many(10) == [b"1234", b"5678"]


def test_an_application_signal_during_a_waiting_batch_neither_loses_nor_doubles(mq):
    import signal

    mq.set(max_bytes=16)
    caught = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: caught.append(1))
    messages = [b"%07d" % i for i in range(200)]
    got: list = []
    main = threading.get_ident()

    def consume() -> None:
        while len(got) < len(messages):
            if len(got) % 20 == 0:
                signal.pthread_kill(main, signal.SIGUSR1)  # lands while the batch waits for room
            got.extend(mq.receive_many(1, timeout=10))

    reader = threading.Thread(target=consume)
    try:
        reader.start()
        assert mq.send_many(messages, timeout=30) == 200
        reader.join(10)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert got == messages
    assert caught


def test_a_batch_in_a_thread_that_blocks_every_signal_polls_and_finishes(mq):
    import signal

    mq.set(max_bytes=16)
    messages = [b"%07d" % i for i in range(100)]
    result: dict = {}

    def send() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        result["sent"] = mq.send_many(messages, timeout=30)

    sender = threading.Thread(target=send)
    sender.start()
    got: list = []
    while len(got) < len(messages):
        got.extend(mq.receive_many(10, timeout=10))
    sender.join(10)
    assert result["sent"] == 100 and got == messages


def test_a_batch_of_many_equal_messages_is_cut_without_caching_a_layout(mq):
    # A cached layout costs ~32 bytes per message: batches above _SPLIT_MAX are sliced instead.
    from sysvmq._binding import handle as _lowlevel

    count = _lowlevel._SPLIT_MAX + 76
    messages = [b"%d" % (i % 10) for i in range(count)]
    mq.send_many(messages)
    _lowlevel._SPLITTERS.clear()
    got: list = []
    while len(got) < count:
        got += mq.receive_many(count)
    assert got == messages
    assert all(n <= _lowlevel._SPLIT_MAX for n, _ in _lowlevel._SPLITTERS)
