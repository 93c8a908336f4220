"""Sending and receiving: payloads, type selection, flags, size limits."""

import array
import errno

import pytest

import sysvmq
from sysvmq.queue import LONG_MAX, LONG_MIN


@pytest.mark.parametrize(
    "message, expected",
    [
        (b"plain", b"plain"),
        (b"\x00nul\x00inside\x00", b"\x00nul\x00inside\x00"),
        (b"", b""),
        (bytearray(b"bytearray"), b"bytearray"),
        (memoryview(b"0123456789")[2:5], b"234"),
        (memoryview(b"0123456789")[::2], b"02468"),
        (array.array("H", [1, 2]), array.array("H", [1, 2]).tobytes()),
        ("héllo ☃", "héllo ☃".encode()),
        (bytes(range(256)), bytes(range(256))),
    ],
)
def test_payloads_are_binary_safe_and_length_delimited(mq, message, expected):
    mq.send(message)
    assert mq.receive() == expected
    assert mq.stats().count == 0


@pytest.mark.parametrize("bad", [None, 5, 1.5, object(), ["a"]])
def test_non_bytes_messages_are_refused(mq, bad):
    with pytest.raises(TypeError):
        mq.send(bad)
    assert mq.stats().count == 0


def test_receive_message_reports_type(mq):
    mq.send(b"x", type=42)
    message = mq.receive_message()
    assert message == sysvmq.Message(42, b"x")
    assert (message.type, message.data) == (42, b"x")


def fill(mq, types):
    for t in types:
        mq.send(f"type {t}", type=t)


def drain(mq):
    out = []
    while True:
        try:
            out.append(mq.receive_message(block=False).type)
        except sysvmq.QueueEmptyError:
            return out


def test_type_zero_takes_messages_in_order(mq):
    fill(mq, [3, 1, 2])
    assert [mq.receive_message().type for _ in range(3)] == [3, 1, 2]


def test_positive_type_takes_first_of_exactly_that_type(mq):
    fill(mq, [3, 1, 2, 1])
    assert mq.receive_message(1) == sysvmq.Message(1, b"type 1")
    assert mq.receive_message(2).type == 2
    assert drain(mq) == [3, 1]


def test_negative_type_takes_lowest_type_first(mq):
    fill(mq, [5, 3, 4, 2, 9, 2])
    assert [mq.receive_message(-4).type for _ in range(4)] == [2, 2, 3, 4]
    with pytest.raises(sysvmq.QueueEmptyError):
        mq.receive(-4, block=False)
    assert drain(mq) == [5, 9]


def test_exclude_takes_first_of_any_other_type(mq):
    fill(mq, [1, 1, 2, 3])
    assert mq.receive_message(1, exclude=True).type == 2
    assert mq.receive_message(1, sysvmq.MSG_EXCEPT).type == 3
    with pytest.raises(sysvmq.QueueEmptyError):
        mq.receive(1, exclude=True, block=False)
    assert drain(mq) == [1, 1]


@pytest.mark.parametrize("mtype", [0, -1])
def test_exclude_needs_a_positive_type(mq, mtype):
    with pytest.raises(ValueError):
        mq.receive(mtype, exclude=True)


def test_extreme_types(mq):
    mq.send(b"max", type=LONG_MAX)
    mq.send(b"one", type=1)
    assert mq.receive_message(LONG_MAX).data == b"max"
    mq.send(b"max", type=LONG_MAX)
    # LONG_MIN selects the lowest type of all (the kernel reads -LONG_MIN as LONG_MAX).
    assert mq.receive_message(LONG_MIN).type == 1
    assert mq.receive_message(LONG_MIN).type == LONG_MAX


@pytest.mark.parametrize(
    "mtype, error",
    [
        (0, ValueError),
        (-1, ValueError),
        (LONG_MAX + 1, OverflowError),
        (1.0, TypeError),
        ("1", TypeError),
        (None, TypeError),
    ],
)
def test_bad_send_types_are_refused(mq, mtype, error):
    with pytest.raises(error):
        mq.send(b"x", type=mtype)
    assert mq.stats().count == 0


@pytest.mark.parametrize(
    "mtype, error", [(LONG_MAX + 1, OverflowError), (LONG_MIN - 1, OverflowError), (0.0, TypeError), ("0", TypeError)]
)
def test_bad_receive_types_are_refused(mq, mtype, error):
    mq.send(b"sentinel")
    with pytest.raises(error):
        mq.receive(mtype)
    assert mq.receive() == b"sentinel"


def test_int_subclasses_work_as_types(mq):
    import enum

    class Kind(enum.IntEnum):
        ORDER = 7

    mq.send(b"o", type=Kind.ORDER)
    assert mq.receive_message(Kind.ORDER).type == 7


def test_too_big_message_stays_in_queue(mq):
    small = sysvmq.MessageQueue.from_id(mq.id, max_size=4)
    mq.send(b"0123456789")
    with pytest.raises(sysvmq.MessageTooLargeError) as info:
        small.receive()
    assert info.value.errno == errno.E2BIG
    assert "max_size=4" in str(info.value) and "stays in the queue" in str(info.value)
    assert mq.stats().count == 1
    assert mq.receive() == b"0123456789"


@pytest.mark.parametrize("spelling", [{"truncate": True}, {"flags": sysvmq.MSG_NOERROR}])
def test_truncate_cuts_the_message(mq, spelling):
    small = sysvmq.MessageQueue.from_id(mq.id, max_size=4)
    mq.send(b"0123456789", type=3)
    assert small.receive_message(**spelling) == sysvmq.Message(3, b"0123")
    assert mq.stats().count == 0


def test_max_size_zero_receives_empty_messages_only(mq):
    zero = sysvmq.MessageQueue.from_id(mq.id, max_size=0)
    mq.send(b"")
    assert zero.receive() == b""
    mq.send(b"x")
    with pytest.raises(sysvmq.MessageTooLargeError):
        zero.receive()
    assert mq.receive() == b"x"


def test_message_of_msgmax_bytes_travels(mq, limits):
    if limits.msgmax > mq.stats().max_bytes:
        pytest.skip("msgmax exceeds this queue's capacity")
    data = bytes(range(256)) * (limits.msgmax // 256) + b"z" * (limits.msgmax % 256)
    mq.send(data)
    assert mq.receive() == data


def test_send_above_msgmax_raises_too_large(mq, limits):
    with pytest.raises(sysvmq.MessageTooLargeError) as info:
        mq.send(b"x" * (limits.msgmax + 1))
    assert "kernel.msgmax" in str(info.value)
    assert info.value.errno == errno.EINVAL
    assert mq.stats().count == 0


def test_send_above_queue_capacity_is_refused_not_blocked(mq, limits):
    mq.set(max_bytes=100)
    for kwargs in ({}, {"block": False}):
        with pytest.raises(sysvmq.MessageTooLargeError) as info:
            mq.send(b"x" * 101, **kwargs)
        assert info.value.errno == errno.EMSGSIZE
        assert "max_bytes" in str(info.value)
    mq.send(b"x" * 100)
    assert mq.stats().bytes == 100


def test_nonblocking_send_on_full_queue_raises_full(mq):
    mq.set(max_bytes=10)
    mq.send(b"x" * 10)
    for kwargs in ({"block": False}, {"flags": sysvmq.IPC_NOWAIT}):
        with pytest.raises(sysvmq.QueueFullError) as info:
            mq.send(b"y", **kwargs)
        assert isinstance(info.value, BlockingIOError)
        assert info.value.errno == errno.EAGAIN
    assert mq.receive() == b"x" * 10


def test_nonblocking_receive_on_empty_queue_raises_empty(mq):
    for kwargs in ({"block": False}, {"flags": sysvmq.IPC_NOWAIT}):
        with pytest.raises(sysvmq.QueueEmptyError) as info:
            mq.receive(**kwargs)
        assert isinstance(info.value, BlockingIOError)
        assert info.value.errno == errno.ENOMSG


@pytest.mark.parametrize("flags", [-1, 1 << 40, 0o1, sysvmq.MSG_COPY])
def test_unknown_receive_flags_are_refused(mq, flags):
    with pytest.raises((ValueError, OverflowError)):
        mq.receive(0, flags)


def test_receive_flags_are_refused_on_send(mq):
    with pytest.raises(ValueError):
        mq.send(b"x", 1, sysvmq.MSG_NOERROR)
    assert mq.stats().count == 0


def test_seed_example(mq):
    # The Ruby gem's README, in Python.
    mq.send(b"Hello, world!", 1)
    assert mq.receive(0, sysvmq.IPC_NOWAIT) == b"Hello, world!"
    with pytest.raises(sysvmq.QueueEmptyError):
        mq.receive(0, sysvmq.IPC_NOWAIT)
