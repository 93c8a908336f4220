"""Objects that lie, arguments at the edges, stale handles and foreign queues: each is
refused with a clear Python exception before any system call, or handled, never a crash."""

import decimal
import errno
import fractions
import os
import subprocess
import sys
import threading
import time

import pytest
from conftest import child_env
from test_permissions import as_nobody

import sysvmq
from sysvmq.queue import LONG_MAX


class LyingLength(bytes):
    """Two bytes that claim to be thousands."""

    def __len__(self) -> int:
        return 8000


class LyingClass(bytes):
    """Claims to be exact bytes, and lies about its length too."""

    @property  # type: ignore[misc]
    def __class__(self):
        return bytes

    def __len__(self) -> int:
        return 8000


class ClaimsStr(bytes):
    """Bytes that claim to be a str (isinstance() believes __class__)."""

    @property  # type: ignore[misc]
    def __class__(self):
        return str


class LyingEncode(str):
    def encode(self, *args, **kwargs):
        return LyingLength(b"ab")


class Index:
    """An integer that is not an int (numpy's integers are such)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


def send_async(mq, message, **kwargs):
    import asyncio

    asyncio.run(mq.send_async(message, **kwargs))


SENDS = {
    "send": lambda mq, m: mq.send(m),
    "send with a timeout": lambda mq, m: mq.send(m, timeout=1),
    "send with flags": lambda mq, m: mq.send(m, flags=sysvmq.IPC_NOWAIT),
    "send_async": lambda mq, m: send_async(mq, m),
    "send_many": lambda mq, m: mq.send_many([m]),
}


@pytest.mark.parametrize("liar", [LyingLength(b"ab"), LyingClass(b"ab"), ClaimsStr(b"ab"), LyingEncode("ab")], ids=type)
@pytest.mark.parametrize("send", SENDS.values(), ids=SENDS.keys())
def test_the_length_sent_is_that_of_the_buffer(mq, send, liar):
    send(mq, liar)
    assert mq.receive() == b"ab"
    assert mq.stats().count == 0


def test_a_large_lie_does_not_crash(mq):
    code = f"""
import sysvmq
class Liar(bytes):
    def __len__(self):
        return 1 << 40
mq = sysvmq.MessageQueue.from_id({mq.id})
mq.send(Liar(b"xy"))
mq.send_many([Liar(b"zw")])
print(mq.receive(), mq.receive())
"""
    out = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "b'xy' b'zw'"


class ClaimsToBeBytes:
    """A proxy: says it is bytes, has no buffer."""

    @property
    def __class__(self):
        return bytes

    def __len__(self) -> int:
        return 100


@pytest.mark.parametrize("send", SENDS.values(), ids=SENDS.keys())
def test_a_proxy_without_a_buffer_is_refused(mq, send):
    with pytest.raises(TypeError, match="message must be bytes-like or str"):
        send(mq, ClaimsToBeBytes())
    assert mq.stats().count == 0


def run_async(coro):
    import asyncio

    return asyncio.run(coro)


# Every entry point that takes a message type, each with the type given as `value`.
TYPED_CALLS = {
    "send": lambda mq, t: mq.send(b"x", type=t),
    "send timed": lambda mq, t: mq.send(b"x", type=t, timeout=1),
    "send_many": lambda mq, t: mq.send_many([b"x"], type=t),
    "send_async": lambda mq, t: run_async(mq.send_async(b"x", type=t)),
}
TYPED_RECEIVES = {
    "receive": lambda mq, t: mq.receive(t),
    "receive timed": lambda mq, t: mq.receive(t, timeout=1),
    "receive_message": lambda mq, t: mq.receive_message(t).data,
    "receive_many": lambda mq, t: mq.receive_many(5, t)[0],
    "receive_into": lambda mq, t: mq.receive_into(bytearray(8), t),
    "receive_async": lambda mq, t: run_async(mq.receive_async(t)),
    "receive_message_async": lambda mq, t: run_async(mq.receive_message_async(t)).data,
}


@pytest.mark.parametrize("value", [True, Index(1)], ids=["bool", "__index__"])
@pytest.mark.parametrize("call", TYPED_CALLS.values(), ids=TYPED_CALLS.keys())
def test_one_integer_rule_for_every_send(mq, call, value):
    call(mq, value)
    assert mq.receive_message(block=False).type == 1


@pytest.mark.parametrize("value", [True, Index(1)], ids=["bool", "__index__"])
@pytest.mark.parametrize("call", TYPED_RECEIVES.values(), ids=TYPED_RECEIVES.keys())
def test_one_integer_rule_for_every_receive(mq, call, value):
    mq.send(b"x", type=1)
    call(mq, value)
    assert mq.stats().count == 0


@pytest.mark.parametrize("value", [decimal.Decimal("2.7"), fractions.Fraction(7, 2), 2.0, "2"], ids=repr)
@pytest.mark.parametrize("call", [*TYPED_CALLS.values(), *TYPED_RECEIVES.values()], ids=[*TYPED_CALLS, *TYPED_RECEIVES])
def test_a_type_that_is_no_integer_is_refused_everywhere(mq, call, value):
    mq.send(b"sentinel", type=2)
    with pytest.raises(TypeError, match="message type must be an int"):
        call(mq, value)
    assert mq.receive_message(block=False) == sysvmq.Message(2, b"sentinel")


# Every entry point that takes raw flags, each with the flags given as `value`.
FLAGGED_CALLS = {
    "send": lambda mq, f: mq.send(b"x", 1, f),
    "send timed": lambda mq, f: mq.send(b"x", 1, f, timeout=1),
    "receive": lambda mq, f: mq.receive(0, f),
    "receive timed": lambda mq, f: mq.receive(0, f, timeout=1),
    "receive_message": lambda mq, f: mq.receive_message(0, f),
    "receive_into": lambda mq, f: mq.receive_into(bytearray(16), 0, f),
}


# Falsy values: the fast paths must not take "no flags set" for "flags are an int".
@pytest.mark.parametrize("value", [0.0, decimal.Decimal(0), None, ""], ids=repr)
@pytest.mark.parametrize("call", FLAGGED_CALLS.values(), ids=FLAGGED_CALLS.keys())
def test_flags_that_are_no_integer_are_refused_everywhere(mq, call, value):
    mq.send(b"sentinel", type=2)
    with pytest.raises(TypeError, match="flags must be an int"):
        call(mq, value)
    assert mq.stats().count == 1  # nothing sent, nothing taken
    assert mq.receive_message(block=False) == sysvmq.Message(2, b"sentinel")


@pytest.mark.parametrize("value", [LONG_MAX + 1, 2**70])
@pytest.mark.parametrize("call", [*TYPED_CALLS.values(), *TYPED_RECEIVES.values()], ids=[*TYPED_CALLS, *TYPED_RECEIVES])
def test_a_type_beyond_a_c_long_is_an_overflow_everywhere(mq, call, value):
    with pytest.raises(OverflowError, match="message type"):
        call(mq, value)


def numpy_int64(value: int):
    numpy = pytest.importorskip("numpy", reason="numpy is not installed")
    return numpy.int64(value)


INTEGER_KINDS = {"bool": lambda v: bool(v), "__index__": Index, "numpy.int64": numpy_int64}


@pytest.mark.parametrize("make", INTEGER_KINDS.values(), ids=INTEGER_KINDS.keys())
def test_ftok_takes_its_project_id_by_the_integer_rule(tmp_path, make):
    path = tmp_path / "keyfile"
    path.write_text("x")
    assert sysvmq.ftok(path, make(1)) == sysvmq.ftok(path, 1)
    with pytest.raises(ValueError, match=r"1\.\.255"):
        sysvmq.ftok(path, make(0))


@pytest.mark.parametrize("make", [Index, numpy_int64], ids=["__index__", "numpy.int64"])
def test_set_wakeup_signal_takes_its_number_by_the_integer_rule(mq, make):
    current = sysvmq.wakeup_signal()
    assert sysvmq.set_wakeup_signal(make(current)) == current
    with pytest.raises(ValueError, match="no signal"):
        sysvmq.set_wakeup_signal(make(0))


def test_set_wakeup_signal_takes_a_bool_as_the_int_it_is():
    with pytest.raises(ValueError, match="signal 1 cannot be the wake-up signal"):
        sysvmq.set_wakeup_signal(True)  # SIGHUP: an int, not a type error
    with pytest.raises(ValueError, match="no signal"):
        sysvmq.set_wakeup_signal(False)


@pytest.mark.parametrize(
    "call, value",
    [(lambda v: sysvmq.ftok(".", v), 2**31), (sysvmq.set_wakeup_signal, 2**31)],
    ids=["ftok", "set_wakeup_signal"],
)
def test_a_number_beyond_a_c_int_is_an_overflow(call, value):
    with pytest.raises(OverflowError):
        call(value)


class LyingInt(int):
    """An int whose comparisons say it is in any range (PyPy's operator.index returns it as it is)."""

    def __lt__(self, other):
        return False

    __gt__ = __lt__

    def __le__(self, other):
        return True

    __ge__ = __le__


@pytest.mark.parametrize(
    "call",
    [lambda mq, v: mq.receive_many(v), lambda mq, v: sysvmq.ftok(".", v)],
    ids=["receive_many", "ftok"],
)
def test_an_int_subclass_is_judged_by_its_value_not_its_comparisons(mq, call):
    mq.send(b"sentinel")
    with pytest.raises(ValueError):
        call(mq, LyingInt(0))
    assert mq.stats().count == 1


def test_a_huge_timeout_waits_like_none(mq):
    mq.send(b"there")
    assert mq.receive(timeout=10**400) == b"there"
    mq.send(b"there", type=3)
    assert mq.receive_message(timeout=10**400) == sysvmq.Message(3, b"there")
    threading.Timer(0.1, mq.send, (b"later",)).start()
    assert mq.receive(timeout=10**400) == b"later"
    mq.send(b"sent", timeout=10**400)
    assert mq.receive() == b"sent"


def test_a_send_is_refused_once_the_capacity_was_lowered_below_it(mq):
    other = sysvmq.MessageQueue.from_id(mq.id)
    mq.set(max_bytes=200)
    mq.send(b"a" * 150)
    with pytest.raises(sysvmq.QueueFullError):
        mq.send(b"b" * 100, block=False)  # the handle has seen the capacity (200) once
    other.set(max_bytes=90)  # another process lowers it: 100 bytes can never fit now
    start = time.monotonic()
    with pytest.raises(sysvmq.MessageTooLargeError, match="max_bytes"):
        mq.send(b"b" * 100, timeout=5)
    assert time.monotonic() - start < 1
    assert mq.stats().count == 1


@pytest.mark.skipif(sys.platform != "linux", reason="Linux counts each message against the capacity")
@pytest.mark.parametrize("size", [0, 1])
def test_a_queue_of_capacity_zero_refuses_even_an_empty_message(mq, size):
    # set() refuses 0, other tools do not (msgctl IPC_SET as the owner): the kernel then
    # holds no message at all, so a blocking send would sleep for good.
    from sysvmq._sysvmq_cffi import lib

    assert lib.sysvmq_set(mq.id, -1, -1, -1, 0) == 0
    assert mq.stats().max_bytes == 0
    for send in (
        lambda: mq.send(b"x" * size),
        lambda: mq.send(b"x" * size, timeout=5),
        lambda: mq.send(b"x" * size, block=False),
        lambda: mq.send_many([b"x" * size]),
        lambda: mq.send_many([b"x" * size], block=False),
    ):
        start = time.monotonic()
        with pytest.raises(sysvmq.MessageTooLargeError, match="max_bytes"):
            send()
        assert time.monotonic() - start < 1
    assert mq.stats().count == 0


def test_a_message_too_large_for_the_queue_is_too_large_without_waiting_too(mq):
    mq.set(max_bytes=10)
    for send in (lambda: mq.send(b"x" * 11, block=False), lambda: mq.send_many([b"x" * 11], block=False)):
        with pytest.raises(sysvmq.MessageTooLargeError, match="max_bytes"):
            send()


class FailingClose(sysvmq.MessageQueue):
    __slots__ = ()

    def close(self) -> None:
        raise sysvmq.SysVMQError(errno.EBUSY, "close failed")


def test_the_body_exception_is_not_replaced_by_a_close_error(mq):
    with pytest.raises(KeyError), FailingClose.from_id(mq.id):
        raise KeyError("from the body")
    with pytest.raises(sysvmq.SysVMQError, match="close failed"), FailingClose.from_id(mq.id):
        pass  # with no exception in flight, the close error is the one to see


def test_mode_zero_is_mode_zero(make_queue, free_key):
    mq = make_queue(free_key, create=True, mode=0)
    assert mq.stats().mode == 0


REUSE_ID = """
import sysvmq
first = sysvmq.MessageQueue(0x1234, create=True)
stale = sysvmq.MessageQueue.from_id(first.id)
first.destroy()
with open("/proc/sys/kernel/msg_next_id", "w") as f:
    f.write(str(first.id))
second = sysvmq.MessageQueue(0x5678, create=True)
assert second.id == first.id, (second.id, first.id)
second.send(b"for the new queue only")
second.set(max_bytes=100)
second.send(b"f" * 70)  # full for another 70 bytes
for call in (lambda: stale.receive(7, timeout=0.1), lambda: stale.stats(), lambda: stale.send(b"x" * 70, timeout=0.1)):
    try:
        call()
        print("no error")
    except sysvmq.QueueRemovedError as e:
        print("removed", e.errno)
print(second.stats().count)
second.destroy()
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/proc/sys/kernel/msg_next_id"), reason="needs root and kernel.msg_next_id"
)
def test_a_stale_handle_whose_id_was_reused_is_detected():
    out = subprocess.run(
        ["unshare", "--ipc", sys.executable, "-c", REUSE_ID],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:4] == [f"removed {errno.EIDRM}"] * 3 + ["2"]


@pytest.mark.skipif(os.geteuid() != 0, reason="another user's queue needs root")
def test_create_with_a_mode_refuses_a_queue_another_user_made_first(free_key):
    # The other user makes the key first, open to all: exactly what create=True, mode=0o600 must not accept.
    kind, msqid = as_nobody(lambda: sysvmq.MessageQueue(free_key, create=True, mode=0o666).id)
    assert kind == "ok"
    try:
        with pytest.raises(sysvmq.PermissionDeniedError, match="uid 65534 with mode 0o666"):
            sysvmq.MessageQueue(free_key, create=True, mode=0o600)
        with pytest.raises(sysvmq.QueueExistsError):
            sysvmq.MessageQueue(free_key, create=True, exclusive=True, mode=0o600)
        # Asking for a shared queue, or for none in particular, accepts it.
        assert sysvmq.MessageQueue(free_key, create=True, mode=0o666).id == msqid
        assert sysvmq.MessageQueue(free_key, create=True).id == msqid
    finally:
        sysvmq.MessageQueue.from_id(msqid).destroy()


def test_create_with_a_mode_refuses_a_queue_more_open_than_asked(make_queue, free_key):
    make_queue(free_key, create=True, mode=0o644)
    with pytest.raises(sysvmq.PermissionDeniedError, match="exclusive=True"):
        sysvmq.MessageQueue(free_key, create=True, mode=0o600)
    assert sysvmq.MessageQueue(free_key, create=True, mode=0o644).key == free_key
    assert sysvmq.MessageQueue(free_key, create=True, mode=0o664).key == free_key  # less open than asked
