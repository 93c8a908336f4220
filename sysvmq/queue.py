"""``MessageQueue``: a handle on one System V message queue."""

import builtins
import errno
import functools
import math
import operator
import os
from typing import Any, Callable, Iterable, List, NamedTuple, Optional, Tuple, TypeVar, Union

from sysvmq import aio, wakeup
from sysvmq._sysvmq_cffi import ffi, lib
from sysvmq.errors import (
    MessageTooLargeError,
    PermissionDeniedError,
    QueueEmptyError,
    QueueFullError,
    SysVMQError,
    error_for,
)
from sysvmq.stats import KEY_MASK, QueueStats, limits, msgmax, queues, stats_from

__all__ = ["MessageQueue", "Message", "Payload"]

#: What send() accepts: any bytes-like object, or str (sent as UTF-8).
Payload = Union[bytes, bytearray, memoryview, str, Any]

_T = TypeVar("_T")


class Message(NamedTuple):
    """A received message: its type and its payload."""

    type: int
    data: bytes


# Hot-path names bound once: each global or attribute lookup is paid per message.
_new_message: Callable[[Tuple[int, bytes]], Message] = functools.partial(tuple.__new__, Message)
_send = lib.sysvmq_send
_put = lib.sysvmq_put
_receive = lib.sysvmq_receive
_take = lib.sysvmq_take
_take_within = lib.sysvmq_take_within
_unpack = ffi.unpack
_NULL = ffi.NULL
_EINTR = -errno.EINTR
_EDOM = -errno.EDOM
_alloc = ffi.new_allocator(should_clear_after_alloc=False)
_HEADER = ffi.offsetof("struct sysvmq_msgbuf", "mtext")
_type = builtins.type  # `type` is a parameter name of the methods below

LONG_MAX: int = lib.SYSVMQ_LONG_MAX
LONG_MIN: int = lib.SYSVMQ_LONG_MIN
_KEY_BITS = ffi.sizeof("key_t") * 8
_KEY_MIN = -(1 << (_KEY_BITS - 1))
_KEY_MAX = (1 << _KEY_BITS) - 1
_INT_MAX = (1 << 31) - 1
_INT_MIN = -(1 << 31)
_UINT32_MAX = (1 << 32) - 1
_SSIZE_LIMIT = 1 << (ffi.sizeof("size_t") * 8 - 1)  # ssize_t: -_SSIZE_LIMIT .. _SSIZE_LIMIT - 1
_OPEN_FLAG_BITS = lib.IPC_CREAT | lib.IPC_EXCL | 0o777
_MSG_EXCEPT = lib.SYSVMQ_MSG_EXCEPT if lib.SYSVMQ_HAS_MSG_EXCEPT else 0
_MSG_COPY = lib.SYSVMQ_MSG_COPY if lib.SYSVMQ_HAS_MSG_COPY else 0
_SEND_FLAG_BITS = lib.IPC_NOWAIT
_RECEIVE_FLAG_BITS = lib.IPC_NOWAIT | lib.MSG_NOERROR | _MSG_EXCEPT
_FOREVER_NS = 1 << 62  # deadlines further out than ~146 years mean "no deadline"
_FOREVER_S = _FOREVER_NS // 10**9
#: The largest out-buffer receive_many() uses: a batch stops when it is full.
BATCH_BYTES = 1 << 20


def _check_int(name: str, value: Any, low: int, high: int, c_low: int = _INT_MIN, c_high: int = _INT_MAX) -> int:
    """`value` as an int in low..high, by one rule for every argument of every call.

    Integers are what ``operator.index`` takes (int, bool, numpy integers), never a
    float or a Decimal. OverflowError for a value the C type (c_low..c_high) cannot
    hold, ValueError for one it can hold that is out of the meaningful range.
    """
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type_name(value)}") from None
    if not low <= number <= high:
        kind = ValueError if c_low <= number <= c_high else OverflowError
        raise kind(f"{name} must be in {low}..{high}, not {number}")
    return number


def _check_key(key: Any) -> int:
    """The signed key_t for `key`, which may be given as 0..2**32-1 or signed."""
    value = _check_int("key", key, _KEY_MIN, _KEY_MAX, _KEY_MIN, _KEY_MAX)
    return value - (1 << _KEY_BITS) if value > _KEY_MAX >> 1 else value


def _check_send_type(mtype: Any) -> int:
    try:
        return _check_int("message type", mtype, 1, LONG_MAX, LONG_MIN, LONG_MAX)
    except ValueError:
        raise ValueError(
            f"message type must be >= 1 to send (0 and negatives only select on receive), not {mtype}"
        ) from None


def _check_receive_type(mtype: Any) -> int:
    return _check_int("message type", mtype, LONG_MIN, LONG_MAX, LONG_MIN, LONG_MAX)


def _check_flags(flags: Any, allowed: int, call: str) -> int:
    value = _check_int("flags", flags, 0, _INT_MAX)
    unknown = value & ~allowed
    if unknown:
        raise ValueError(f"flags {unknown:#o} are not {call} flags")
    return value


def deadline_ns(timeout: Any) -> int:
    """The CLOCK_MONOTONIC deadline for `timeout` seconds; -1 for None (forever)."""
    if timeout is None:
        return -1
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, not {type(timeout).__name__}")
    if isinstance(timeout, float) and math.isnan(timeout):
        raise ValueError("timeout must not be NaN")
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0 seconds, not {timeout}")
    if timeout >= _FOREVER_S:  # also an int too large for a float
        return -1
    return int(lib.sysvmq_monotonic_ns() + timeout * 1e9)


def _blocking(flags: int, block: bool, timeout: Any) -> Tuple[int, int]:
    """Fold `block` into `flags` and turn `timeout` into a deadline."""
    if not block:
        flags |= lib.IPC_NOWAIT
    if timeout is not None and flags & lib.IPC_NOWAIT:
        raise ValueError("timeout applies to blocking calls: drop block=False / IPC_NOWAIT, or the timeout")
    return flags, deadline_ns(timeout)


def send_options(flags: Any, block: bool, timeout: Any) -> Tuple[int, int]:
    """(msgsnd flags, deadline) for a send call's arguments."""
    return _blocking(_check_flags(flags, _SEND_FLAG_BITS, "msgsnd"), block, timeout)


def receive_options(
    mtype: int, flags: Any, block: bool, timeout: Any, truncate: bool, exclude: bool
) -> Tuple[int, int]:
    """(msgrcv flags, deadline) for a receive call's arguments; `mtype` already checked."""
    flags = _check_flags(flags, _RECEIVE_FLAG_BITS, "msgrcv")
    if truncate:
        flags |= lib.MSG_NOERROR
    if exclude:
        if not _MSG_EXCEPT:
            raise NotImplementedError("exclude=True needs MSG_EXCEPT, which only Linux has")
        flags |= _MSG_EXCEPT
    if flags & _MSG_EXCEPT and mtype <= 0:
        raise ValueError(f"exclude / MSG_EXCEPT needs a message type > 0 to exclude, not {mtype}")
    return _blocking(flags, block, timeout)


def type_name(value: object) -> str:
    return type(value).__name__


def _bad_type(mtype: Any, check: Callable[[Any], int]) -> Exception:
    """The error for a message type that C refused: `check` explains it."""
    try:
        check(mtype)
    except (TypeError, ValueError, OverflowError) as e:
        return e
    return TypeError(f"message type must be an int, not {type_name(mtype)}")


def _as_bytes(message: Any) -> bytes:
    """`message` as exact bytes, copied from its buffer (never trusting its len())."""
    if isinstance(message, str):
        return str.encode(message, "utf-8")
    try:
        return memoryview(message).tobytes()
    except TypeError:
        raise TypeError(f"message must be bytes-like or str, not {type_name(message)}") from None


def _batch_buffer(outcap: int, slots: int) -> Tuple[Any, int, int, Any, Any, Any]:
    """A receive_many buffer: (out, its size, slots, offsets, lengths, types)."""
    slots = max(slots, 64)
    return (
        _alloc("char[]", outcap),
        outcap,
        slots,
        ffi.new("size_t[]", slots),
        ffi.new("size_t[]", slots),
        ffi.new("long[]", slots),
    )


def payload(message: Any) -> Any:
    """`message` as something a `const char *` parameter takes, whose len() is the length
    of the memory C reads: exact bytes, or a cdata view of the object's buffer (a
    subclass of bytes or str may lie in its __len__, __class__ or encode())."""
    if isinstance(message, str):
        return str.encode(message, "utf-8")
    if _type(message) is bytes:
        return message
    try:
        return ffi.from_buffer(message)
    except TypeError:
        raise TypeError(f"message must be bytes-like or str, not {type(message).__name__}") from None
    except (BufferError, ValueError):  # a non-contiguous buffer: one copy in C order
        return memoryview(message).tobytes()


class MessageQueue:
    """A handle on a System V message queue.

    ``MessageQueue(key)`` opens the queue with that key; ``create=True`` makes it if
    needed (``exclusive=True``: only if new), with permission bits ``mode``
    (default 0o600); raw ``msgget`` flags such as ``IPC_CREAT | 0o666`` work too.
    ``max_size`` is the largest message this handle receives (default: the
    kernel's msgmax). One handle may be shared by any number of threads.
    """

    __slots__ = ("_h", "_key", "_id", "_max_size", "_buffers", "_batches", "__weakref__")

    _h: Any
    _key: int
    _id: int
    _max_size: int
    _buffers: List[Tuple[Any, Any, Any, Any]]  # free receive buffers; a call takes one, so threads never share
    _batches: List[Tuple[Any, int, int, Any, Any, Any]]  # free receive_many buffers

    def __init__(
        self,
        key: int,
        max_size: Optional[int] = None,
        flags: int = 0,
        *,
        create: bool = False,
        exclusive: bool = False,
        mode: Optional[int] = None,
    ) -> None:
        signed_key = _check_key(key)
        flags = _check_flags(flags, _OPEN_FLAG_BITS, "msgget")
        size = self._check_max_size(max_size)
        if mode is not None:
            mode = _check_int("mode", mode, 0, 0o777)
            if flags & 0o777 and flags & 0o777 != mode:
                raise ValueError(f"mode {mode:#o} contradicts the permission bits {flags & 0o777:#o} in flags")
            flags |= mode
        if create:
            flags |= lib.IPC_CREAT
        if exclusive:
            if not flags & lib.IPC_CREAT:
                raise ValueError("exclusive=True needs create=True (or IPC_CREAT in flags)")
            flags |= lib.IPC_EXCL
        if (flags & lib.IPC_CREAT or signed_key == lib.IPC_PRIVATE) and mode is None and not flags & 0o777:
            flags |= 0o600
        wakeup.configure_from_environment()
        what = (
            "create a private queue"
            if signed_key == lib.IPC_PRIVATE
            else f"open queue key={signed_key & KEY_MASK:#010x}"
        )
        if mode is not None and flags & lib.IPC_CREAT and not exclusive and signed_key != lib.IPC_PRIVATE:
            msqid = self._create_or_open_as_asked(signed_key, flags, mode, what)
        else:
            msqid = lib.sysvmq_get(signed_key, flags)
        if msqid < 0:
            raise error_for(-msqid, what)
        self._setup(signed_key, True, msqid, size)

    @staticmethod
    def _create_or_open_as_asked(signed_key: int, flags: int, mode: int, what: str) -> int:
        """msgget for create=True with a mode: the msqid, or -errno.

        IPC_CREAT alone would open a queue someone else made first with other
        permissions, silently: a queue more open than `mode`, or, when `mode` shares
        with no one, a queue of another user, is refused.
        """
        msqid = lib.sysvmq_get(signed_key, flags | lib.IPC_EXCL)
        if msqid != -errno.EEXIST:
            return msqid
        msqid = lib.sysvmq_get(signed_key, flags & ~lib.IPC_CREAT)
        if msqid < 0:
            return msqid
        ds = ffi.new("struct msqid_ds *")
        if lib.sysvmq_stat(msqid, ds) < 0:
            return msqid  # no read permission: nothing to compare, and nothing to read either
        owner, existing = ds.msg_perm.uid, ds.msg_perm.mode & 0o777
        if existing & ~mode or (owner != os.geteuid() and not mode & 0o077):
            raise PermissionDeniedError(
                errno.EPERM,
                f"{what}: it exists already, owned by uid {owner} with mode {existing:#o}, which is not "
                f"what mode={mode:#o} asks (another user may have made it first); pass exclusive=True "
                "to insist on a new queue, or leave out mode to accept the existing one as it is",
            )
        return msqid

    @classmethod
    def from_id(cls, id: int, max_size: Optional[int] = None) -> "MessageQueue":
        """Attach to an existing queue by its msqid (the id ``ipcs -q`` prints)."""
        msqid = _check_int("id", id, 0, _INT_MAX)
        size = cls._check_max_size(max_size)
        wakeup.configure_from_environment()
        ds = ffi.new("struct msqid_ds *")
        r = lib.sysvmq_stat(msqid, ds)
        if r == -errno.EACCES:
            # No read permission: the key is still listed by MSG_STAT_ANY.
            found = [q.key for q in queues() if q.id == msqid]
            key, known = (found[0], True) if found else (0, False)
        elif r < 0:
            raise error_for(-r, f"attach to queue id={msqid}", "no queue has this id" if -r == errno.EINVAL else None)
        else:
            key, known = lib.sysvmq_perm_key(ds), True
        mq = cls.__new__(cls)
        mq._setup(_check_key(key & KEY_MASK), known, msqid, size)
        return mq

    @staticmethod
    def _check_max_size(max_size: Optional[int]) -> int:
        if max_size is None:
            return msgmax()
        return _check_int("max_size", max_size, 0, _INT_MAX, -_SSIZE_LIMIT, _SSIZE_LIMIT - 1)

    def _setup(self, signed_key: int, key_known: bool, msqid: int, max_size: int) -> None:
        self._h = ffi.new("sysvmq_handle *")
        self._h.id = msqid
        self._h.key = signed_key
        self._h.key_known = key_known
        self._key = signed_key & KEY_MASK
        self._id = msqid
        self._max_size = max_size
        self._h.max_size = max_size
        self._buffers = []
        self._batches = []

    # ---- attributes ----

    @property
    def key(self) -> int:
        """The queue's key, unsigned (0..2**32-1; 0 for IPC_PRIVATE), as ``ipcs`` prints it."""
        return self._key

    @property
    def id(self) -> int:
        """The queue's msqid."""
        return self._id

    @property
    def max_size(self) -> int:
        """The largest message, in bytes, this handle receives."""
        return self._max_size

    @property
    def closed(self) -> bool:
        """Whether close() was called on this handle."""
        return bool(self._h.closed)

    def __repr__(self) -> str:
        state = " closed" if self._h.closed else ""
        return f"<MessageQueue key={self._key:#010x} id={self._id} max_size={self._max_size}{state}>"

    def __reduce__(self) -> Tuple[Any, ...]:
        return (MessageQueue.from_id, (self._id, self._max_size))

    def _describe(self) -> str:
        return f"queue key={self._key:#010x} id={self._id}"

    # ---- sending ----

    def send(
        self, message: Payload, type: int = 1, flags: int = 0, *, block: bool = True, timeout: Optional[float] = None
    ) -> None:
        """Send `message` (bytes-like, or str as UTF-8) with message type `type` (>= 1).

        Blocks while the queue is full, unless ``block=False`` (then
        :class:`QueueFullError`) or until `timeout` seconds pass
        (:class:`QueueTimeoutError`).
        """
        data = message if _type(message) is bytes else payload(message)
        if flags or not block or timeout is not None or type.__class__ is not int:
            mtype = _check_send_type(type)
            flags, deadline = send_options(flags, block, timeout)
            self._send_data(data, mtype, flags, deadline, timeout, _NULL)
            return
        try:
            r = _put(self._h, type, data, len(data))
        except OverflowError:
            raise _bad_type(type, _check_send_type) from None
        if r:
            self._send_data(data, type, 0, -1, None, _NULL, r)

    def _send_data(
        self, data: Any, mtype: int, flags: int, deadline: int, timeout: Optional[float], token: Any, r: int = _EINTR
    ) -> None:
        """Send checked arguments, resuming after signal handlers ran (PEP 475).

        `r` is the result of an attempt already made; the default makes the first one.
        """
        h = self._h
        size = len(data)
        while r:
            if r != _EINTR:
                raise self._send_error(-r, size, timeout, mtype)
            r = _send(h, mtype, data, size, flags, deadline, token)

    def _send_error(self, err: int, size: int, timeout: Optional[float], mtype: int) -> Exception:
        what = f"send to {self._describe()}"
        if err == errno.EDOM:
            return _bad_type(mtype, _check_send_type)
        if err == errno.EINVAL:
            limit = msgmax()
            if size > limit:
                return MessageTooLargeError(
                    err,
                    f"{what}: the message has {size} bytes, more than the kernel allows "
                    f"(kernel.msgmax = {limit}); raise sysctl kernel.msgmax or send smaller messages",
                )
        if err == errno.EMSGSIZE:
            return error_for(
                err,
                what,
                f"the message has {size} bytes, more than this queue can ever hold "
                f"(stats().max_bytes); raise it with set(max_bytes=...) (up to kernel.msgmnb)",
            )
        return self._error(err, what, timeout)

    def _error(self, err: int, what: str, timeout: Optional[float] = None) -> SysVMQError:
        if err == errno.ETIMEDOUT:
            return error_for(err, what, f"nothing happened within the timeout of {timeout} s")
        if err == errno.EAGAIN:
            return error_for(err, what, "the queue is full (block=False)")
        if err == errno.ENOMSG:
            return error_for(err, what, "no message of the requested type is waiting (block=False)")
        return error_for(err, what)

    def send_many(
        self, messages: Iterable[Payload], type: int = 1, *, block: bool = True, timeout: Optional[float] = None
    ) -> int:
        """Send every message of `messages` with type `type`, in one call into C.

        Returns how many were sent (all of them). The first failure stops the batch
        and is raised with ``.sent``: how many went before it. `timeout` bounds the
        whole batch.
        """
        mtype = _check_send_type(type)
        parts = [m if _type(m) is bytes else _as_bytes(m) for m in messages]
        if not parts:
            return 0
        flags, deadline = send_options(0, block, timeout)
        lens = ffi.new("size_t[]", [len(p) for p in parts])
        data = b"".join(parts)
        sent = ffi.new("size_t *")
        h = self._h
        while True:
            r = lib.sysvmq_send_many(h, mtype, data, lens, len(parts), flags, deadline, _NULL, sent)
            if r == 0:
                return len(parts)
            if r != _EINTR:
                error = self._send_error(-r, len(parts[sent[0]]), timeout, mtype)
                error.sent = int(sent[0])  # type: ignore[attr-defined]
                raise error

    # ---- receiving ----

    def _buffer(self) -> Tuple[Any, Any, Any, Any]:
        """A receive buffer for max_size bytes: (payload, type, deadline of a timed wait, owner)."""
        raw = _alloc("char[]", _HEADER + self._max_size)
        return ffi.cast("char *", raw) + _HEADER, ffi.cast("long *", raw), ffi.new("long long *"), raw

    def _receive_error(self, err: int, timeout: Optional[float], mtype: int) -> Exception:
        what = f"receive from {self._describe()}"
        if err == errno.E2BIG:
            return error_for(
                err,
                what,
                f"the next message is larger than max_size={self._max_size} bytes and stays in the "
                "queue; receive it with a larger max_size, or truncate=True to cut it",
            )
        return self._error(err, what, timeout)

    def _retry_take(self, n: int, mtype: int, timeout: Optional[float], entry: Any) -> int:
        """After a failed common-path receive: raise, or resume it after signal handlers ran."""
        if n == _EDOM:
            deadline_ns(timeout)  # raises: a negative or NaN timeout
        deadline = -1 if timeout is None or n != _EINTR else entry[2][0]
        return self._take_loop(mtype, 0, deadline, timeout, _NULL, self._max_size, _NULL, entry, n)

    def _take_loop(
        self,
        mtype: int,
        flags: int,
        deadline: int,
        timeout: Optional[float],
        dest: Any,
        cap: int,
        token: Any,
        entry: Any,
        n: int = _EINTR,
    ) -> int:
        """Receive into `entry`, resuming after signal handlers ran: the payload length.

        `n` is the result of an attempt already made; the default makes the first one.
        """
        h = self._h
        text = entry[0]
        while n < 0:
            if n != _EINTR:
                raise self._receive_error(-n, timeout, mtype)
            n = _receive(h, text, cap, mtype, flags, deadline, token, dest)
        return n

    def _take_message(
        self, mtype: int, flags: int, deadline: int, timeout: Optional[float], dest: Any, cap: int
    ) -> Tuple[int, int, bytes]:
        """One message with checked options: (length, type, payload or b"" when copied into `dest`)."""
        buffers = self._buffers
        try:
            entry = buffers.pop()
        except IndexError:
            entry = self._buffer()
        n = self._take_loop(mtype, flags, deadline, timeout, dest, cap, _NULL, entry)
        taken = n, entry[1][0], b"" if dest is not _NULL else _unpack(entry[0], n)
        buffers.append(entry)
        return taken

    def _receive_checked(
        self, type: Any, flags: Any, block: bool, timeout: Any, truncate: bool, exclude: bool
    ) -> Tuple[int, int, bytes]:
        """receive() with every argument checked: (length, type, payload)."""
        mtype = _check_receive_type(type)
        flags, deadline = receive_options(mtype, flags, block, timeout, truncate, exclude)
        return self._take_message(mtype, flags, deadline, timeout, _NULL, self._max_size)

    def receive(
        self,
        type: int = 0,
        flags: int = 0,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        truncate: bool = False,
        exclude: bool = False,
    ) -> bytes:
        """The payload of the next message selected by `type`.

        `type` 0 takes the first message; > 0 the first of exactly that type
        (``exclude=True``: of any other type); < 0 the first of the lowest type
        <= abs(type). ``truncate=True`` cuts a message longer than max_size
        instead of raising :class:`MessageTooLargeError`.
        """
        if (
            flags
            or not block
            or truncate
            or exclude
            or type.__class__ is not int
            or (timeout is not None and timeout.__class__ is not float and timeout.__class__ is not int)
        ):
            return self._receive_checked(type, flags, block, timeout, truncate, exclude)[2]
        # The common case, kept to the bone (receive_message mirrors it). A buffer goes
        # back on the free list only after its payload is copied out; if anything
        # raises in between, the buffer is simply dropped.
        buffers = self._buffers
        try:
            entry = buffers.pop()
        except IndexError:
            entry = self._buffer()
        text = entry[0]
        try:
            n = _take(self._h, text, type) if timeout is None else _take_within(self._h, text, type, timeout, entry[2])
        except OverflowError:  # a type or timeout C cannot hold: the checked path explains it
            buffers.append(entry)
            return self._receive_checked(type, 0, True, timeout, False, False)[2]
        if n < 0:
            n = self._retry_take(n, type, timeout, entry)
        data: bytes = _unpack(text, n)
        buffers.append(entry)
        return data

    def receive_message(
        self,
        type: int = 0,
        flags: int = 0,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        truncate: bool = False,
        exclude: bool = False,
    ) -> Message:
        """Like :meth:`receive`, but a :class:`Message` with the type as well."""
        if (
            flags
            or not block
            or truncate
            or exclude
            or type.__class__ is not int
            or (timeout is not None and timeout.__class__ is not float and timeout.__class__ is not int)
        ):
            _, mtype, data = self._receive_checked(type, flags, block, timeout, truncate, exclude)
            return _new_message((mtype, data))
        buffers = self._buffers
        try:
            entry = buffers.pop()
        except IndexError:
            entry = self._buffer()
        text = entry[0]
        try:
            n = _take(self._h, text, type) if timeout is None else _take_within(self._h, text, type, timeout, entry[2])
        except OverflowError:  # a type or timeout C cannot hold: the checked path explains it
            buffers.append(entry)
            _, mtype, data = self._receive_checked(type, 0, True, timeout, False, False)
            return _new_message((mtype, data))
        if n < 0:
            n = self._retry_take(n, type, timeout, entry)
        message = _new_message((entry[1][0], _unpack(text, n)))
        buffers.append(entry)
        return message

    def receive_into(
        self,
        buffer: Any,
        type: int = 0,
        flags: int = 0,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        truncate: bool = False,
        exclude: bool = False,
    ) -> Tuple[int, int]:
        """Receive the next message's payload into the writable `buffer`: (nbytes, type).

        `buffer` is any writable, contiguous buffer (bytearray, memoryview, array,
        numpy array); a message longer than it (or than max_size) raises
        :class:`MessageTooLargeError` and stays queued, unless ``truncate=True``.
        """
        try:
            dest = ffi.from_buffer(buffer, require_writable=True)
        except (TypeError, BufferError, ValueError):
            # Checked before the call: the kernel would drop a message it cannot write (EFAULT).
            raise TypeError(f"buffer must be a writable, contiguous buffer, not {type_name(buffer)}") from None
        mtype = _check_receive_type(type)
        flags, deadline = receive_options(mtype, flags, block, timeout, truncate, exclude)
        n, got, _ = self._take_message(mtype, flags, deadline, timeout, dest, min(len(dest), self._max_size))
        return n, got

    def receive_many(
        self,
        max_count: int,
        type: int = 0,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        truncate: bool = False,
        exclude: bool = False,
    ) -> List[bytes]:
        """Up to `max_count` payloads in one call into C.

        Waits (per `block`/`timeout`) only for the first message, then takes only
        what is already waiting. Never loses a message: one that stops the batch
        (too large, queue removed ...) stays queued and the next call reports it.
        """
        max_count = _check_int("max_count", max_count, 1, _SSIZE_LIMIT - 1, -_SSIZE_LIMIT, _SSIZE_LIMIT - 1)
        mtype = _check_receive_type(type)
        flags, deadline = receive_options(mtype, 0, block, timeout, truncate, exclude)
        cap = self._max_size
        outcap = max(BATCH_BYTES, _HEADER + cap)
        slots = min(max_count, outcap // _HEADER)
        batches = self._batches
        try:
            entry = batches.pop()
        except IndexError:
            entry = _batch_buffer(outcap, slots)
        if entry[1] != outcap or entry[2] < slots:
            entry = _batch_buffer(outcap, slots)
        out, _, _, offsets, lens, types = entry
        h = self._h
        while True:
            n = lib.sysvmq_receive_many(h, out, outcap, cap, mtype, flags, deadline, _NULL, slots, offsets, lens, types)
            if n >= 0:
                break
            if n != _EINTR:
                raise self._receive_error(-n, timeout, mtype)
        view = ffi.buffer(out, outcap)
        messages = [view[o : o + size] for o, size in zip(ffi.unpack(offsets, n), ffi.unpack(lens, n))]
        batches.append(entry)
        return messages

    def peek(self, index: int = 0) -> Message:
        """A copy of the message at position `index` (0 = first), left in the queue.

        Linux MSG_COPY: needs a kernel built with CONFIG_CHECKPOINT_RESTORE.
        """
        index = _check_int("index", index, 0, LONG_MAX, LONG_MIN, LONG_MAX)
        what = f"peek at message {index} of {self._describe()}"
        if not _MSG_COPY:
            raise error_for(errno.ENOSYS, what, "this platform has no MSG_COPY")
        buffers = self._buffers
        try:
            entry = buffers.pop()
        except IndexError:
            entry = self._buffer()
        try:
            n = _receive(self._h, entry[0], self._max_size, index, _MSG_COPY | lib.IPC_NOWAIT, -1, _NULL, _NULL)
            if n == -errno.ENOMSG:
                raise error_for(errno.ENOMSG, what, f"the queue holds fewer than {index + 1} messages")
            if n == -errno.ENOSYS:
                raise error_for(errno.ENOSYS, what, "this kernel was built without CONFIG_CHECKPOINT_RESTORE")
            if n < 0:
                raise self._receive_error(-n, None, index)
            return _new_message((entry[1][0], _unpack(entry[0], n)))
        finally:
            buffers.append(entry)

    # ---- asyncio ----

    async def send_async(self, message: Payload, type: int = 1, *, timeout: Optional[float] = None) -> None:
        """:meth:`send` for asyncio: waits for room without blocking the event loop.

        A call that has to wait sends from a worker thread. Cancelled while it
        waits, it sends nothing; one that got room just before the cancellation
        reached it has sent its message and raises CancelledError all the same. A
        ``timeout`` that expires (:class:`QueueTimeoutError`) always means not sent.
        """
        data = payload(message)
        mtype = _check_send_type(type)
        flags, deadline = send_options(0, True, timeout)
        try:
            self._send_data(data, mtype, flags | lib.IPC_NOWAIT, -1, None, _NULL)
            return
        except QueueFullError:
            pass
        await aio.in_thread(lambda token: self._send_data(data, mtype, flags, deadline, timeout, token))

    async def receive_async(
        self, type: int = 0, *, timeout: Optional[float] = None, truncate: bool = False, exclude: bool = False
    ) -> bytes:
        """:meth:`receive` for asyncio. Cancelling it never loses a message (see sysvmq.aio)."""
        return (await self.receive_message_async(type, timeout=timeout, truncate=truncate, exclude=exclude)).data

    async def receive_message_async(
        self, type: int = 0, *, timeout: Optional[float] = None, truncate: bool = False, exclude: bool = False
    ) -> Message:
        """:meth:`receive_message` for asyncio. Cancelling it never loses a message.

        A worker thread only waits until a matching message is there, taking none;
        the message is taken here, in the event loop's thread, by the coroutine
        that returns it.
        """
        mtype = _check_receive_type(type)
        flags, deadline = receive_options(mtype, 0, True, timeout, truncate, exclude)
        nowait = flags | lib.IPC_NOWAIT
        while True:
            try:
                _, got, data = self._take_message(mtype, nowait, -1, None, _NULL, self._max_size)
                return _new_message((got, data))
            except QueueEmptyError:
                pass  # nothing there yet, or another receiver was first
            await aio.in_thread(lambda token: self._await_message(mtype, flags, deadline, timeout, token))

    def _await_message(self, mtype: int, flags: int, deadline: int, timeout: Optional[float], token: Any) -> None:
        """Block until a message `mtype` selects is waiting, taking none (PEP 475 retries)."""
        h = self._h
        while True:
            r = lib.sysvmq_await(h, mtype, flags, deadline, token)
            if r == 0:
                return
            if r != _EINTR:
                raise self._receive_error(-r, timeout, mtype)

    # ---- control ----

    def _check_open(self, what: str) -> None:
        if self._h.closed:
            raise error_for(errno.EBADF, f"{what} {self._describe()}")

    def stats(self) -> QueueStats:
        """One IPC_STAT snapshot: counts, capacity, owner, mode, pids and times."""
        self._check_open("stat")
        ds = ffi.new("struct msqid_ds *")
        r = lib.sysvmq_stat(self._id, ds)
        if r < 0:
            raise error_for(
                -r,
                f"stat {self._describe()}",
                "reading a queue's stats needs read permission" if -r == errno.EACCES else None,
            )
        if self._h.key_known and lib.sysvmq_perm_key(ds) != self._h.key:
            raise error_for(
                errno.EIDRM, f"stat {self._describe()}", "the queue was removed, and its id now names another queue"
            )
        return stats_from(ds, self._id)

    def set(
        self,
        *,
        mode: Optional[int] = None,
        uid: Optional[int] = None,
        gid: Optional[int] = None,
        max_bytes: Optional[int] = None,
    ) -> None:
        """Change the queue's permission bits, owner or capacity (IPC_SET)."""
        values = [
            -1 if mode is None else _check_int("mode", mode, 0, 0o777),
            -1 if uid is None else _check_int("uid", uid, 0, _UINT32_MAX - 1, _INT_MIN, _UINT32_MAX),
            -1 if gid is None else _check_int("gid", gid, 0, _UINT32_MAX - 1, _INT_MIN, _UINT32_MAX),
            # The kernel keeps the capacity in an int: 2**32 would wrap to 0.
            -1 if max_bytes is None else _check_int("max_bytes", max_bytes, 1, _INT_MAX),
        ]
        self._check_open("set")
        r = lib.sysvmq_set(self._id, *values)
        if r < 0:
            hint = None
            if -r == errno.EPERM and max_bytes is not None:
                hint = (
                    f"a capacity above kernel.msgmnb needs CAP_SYS_RESOURCE; raise sysctl kernel.msgmnb "
                    f"(now {limits().msgmnb}), or only the owner may change the queue"
                )
            raise error_for(-r, f"set {self._describe()}", hint)

    def destroy(self) -> None:
        """Remove the queue (IPC_RMID) for every process; waiting messages are lost."""
        self._check_open("destroy")
        r = lib.sysvmq_remove(self._id)
        if r < 0:
            raise error_for(-r, f"destroy {self._describe()}")

    def close(self) -> None:
        """Close this handle only: wake every thread of this process blocked on it.

        Those calls, and every later one, raise :class:`QueueClosedError`. The
        queue and its messages stay. Closing twice is harmless.
        """
        r = lib.sysvmq_close(self._h)
        if r < 0:
            raise error_for(
                -r,
                f"close {self._describe()}",
                "the handle is closed, but threads still blocked on it cannot be woken: the "
                "application took sysvmq's wake-up signal and blocks every other free signal in "
                "those threads; they return when a message arrives (see sysvmq.set_wakeup_signal)",
            )

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except SysVMQError:
            pass  # the body's exception is the one the caller needs to see
