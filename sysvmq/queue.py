"""``MessageQueue``: a handle on one System V message queue."""

import errno
import functools
import math
from typing import Any, Callable, Iterable, List, NamedTuple, Optional, Tuple, TypeVar, Union

from sysvmq import aio
from sysvmq._sysvmq_cffi import ffi, lib
from sysvmq.errors import MessageTooLargeError, SysVMQError, error_for
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

LONG_MAX: int = lib.SYSVMQ_LONG_MAX
LONG_MIN: int = lib.SYSVMQ_LONG_MIN
_KEY_BITS = ffi.sizeof("key_t") * 8
_KEY_MIN = -(1 << (_KEY_BITS - 1))
_KEY_MAX = (1 << _KEY_BITS) - 1
_INT_MAX = (1 << 31) - 1
_OPEN_FLAG_BITS = lib.IPC_CREAT | lib.IPC_EXCL | 0o777
_MSG_EXCEPT = lib.SYSVMQ_MSG_EXCEPT if lib.SYSVMQ_HAS_MSG_EXCEPT else 0
_MSG_COPY = lib.SYSVMQ_MSG_COPY if lib.SYSVMQ_HAS_MSG_COPY else 0
_SEND_FLAG_BITS = lib.IPC_NOWAIT
_RECEIVE_FLAG_BITS = lib.IPC_NOWAIT | lib.MSG_NOERROR | _MSG_EXCEPT
_FOREVER_NS = 1 << 62  # deadlines further out than ~146 years mean "no deadline"
#: The largest out-buffer receive_many() uses: a batch stops when it is full.
BATCH_BYTES = 1 << 20


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise OverflowError(f"{name} must be in {low}..{high}, not {value}")
    return int(value)


def _check_key(key: Any) -> int:
    """The signed key_t for `key`, which may be given as 0..2**32-1 or signed."""
    value = _check_int("key", key, _KEY_MIN, _KEY_MAX)
    return value - (1 << _KEY_BITS) if value > _KEY_MAX >> 1 else value


def _check_send_type(mtype: Any) -> int:
    if not _is_int(mtype):
        raise TypeError(f"message type must be an int, not {type(mtype).__name__}")
    if mtype < 1:
        raise ValueError(f"message type must be >= 1 to send (0 and negatives only select on receive), not {mtype}")
    if mtype > LONG_MAX:
        raise OverflowError(f"message type must be <= {LONG_MAX} (C long), not {mtype}")
    return int(mtype)


def _check_receive_type(mtype: Any) -> int:
    return _check_int("message type", mtype, LONG_MIN, LONG_MAX)


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
    if math.isnan(timeout):
        raise ValueError("timeout must not be NaN")
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0 seconds, not {timeout}")
    if timeout * 1e9 >= _FOREVER_NS:
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


def receive_options(mtype: int, flags: Any, block: bool, timeout: Any, truncate: bool, exclude: bool) -> Tuple[int, int]:
    """(msgrcv flags, deadline) for a receive call's arguments."""
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
    if isinstance(message, str):
        return message.encode("utf-8")
    try:
        return memoryview(message).tobytes()
    except TypeError:
        raise TypeError(f"message must be bytes-like or str, not {type_name(message)}") from None


def _batch_buffer(outcap: int, slots: int) -> Tuple[Any, int, int, Any, Any, Any]:
    """A receive_many buffer: (out, its size, slots, offsets, lengths, types)."""
    slots = max(slots, 64)
    return _alloc("char[]", outcap), outcap, slots, ffi.new("size_t[]", slots), ffi.new("size_t[]", slots), ffi.new("long[]", slots)


def payload(message: Any) -> Any:
    """`message` as something a `const char *` parameter takes: bytes, or a cdata view."""
    if isinstance(message, str):
        return message.encode("utf-8")
    if isinstance(message, bytes):
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

    __slots__ = ("_h", "_key", "_id", "_max_size", "_buffers", "_batches", "_stash", "__weakref__")

    _h: Any
    _key: int
    _id: int
    _max_size: int
    _buffers: List[Tuple[Any, Any, Any, Any]]  # free receive buffers; a call takes one, so threads never share
    _batches: List[Tuple[Any, int, int, Any, Any, Any]]  # free receive_many buffers
    _stash: List[Message]  # taken off the queue by a cancelled async receive, not yet delivered

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
        if (flags & lib.IPC_CREAT or signed_key == lib.IPC_PRIVATE) and not flags & 0o777:
            flags |= 0o600
        msqid = lib.sysvmq_get(signed_key, flags)
        if msqid < 0:
            what = "create a private queue" if signed_key == lib.IPC_PRIVATE else f"open queue key={signed_key & KEY_MASK:#010x}"
            raise error_for(-msqid, what)
        self._setup(signed_key & KEY_MASK, msqid, size)

    @classmethod
    def from_id(cls, id: int, max_size: Optional[int] = None) -> "MessageQueue":
        """Attach to an existing queue by its msqid (the id ``ipcs -q`` prints)."""
        msqid = _check_int("id", id, 0, _INT_MAX)
        size = cls._check_max_size(max_size)
        ds = ffi.new("struct msqid_ds *")
        r = lib.sysvmq_stat(msqid, ds)
        if r == -errno.EACCES:
            # No read permission: the key is still listed by MSG_STAT_ANY.
            key = next((q.key for q in queues() if q.id == msqid), 0)
        elif r < 0:
            raise error_for(-r, f"attach to queue id={msqid}", "no queue has this id" if -r == errno.EINVAL else None)
        else:
            key = lib.sysvmq_perm_key(ds) & KEY_MASK
        mq = cls.__new__(cls)
        mq._setup(key, msqid, size)
        return mq

    @staticmethod
    def _check_max_size(max_size: Optional[int]) -> int:
        if max_size is None:
            return msgmax()
        if not _is_int(max_size):
            raise TypeError(f"max_size must be an int or None, not {type(max_size).__name__}")
        if max_size < 0:
            raise ValueError(f"max_size must be >= 0 bytes, not {max_size}")
        if max_size > _INT_MAX:
            raise OverflowError(f"max_size must be <= {_INT_MAX} bytes, not {max_size}")
        return int(max_size)

    def _setup(self, key: int, msqid: int, max_size: int) -> None:
        self._h = ffi.new("sysvmq_handle *")
        self._h.id = msqid
        self._key = key
        self._id = msqid
        self._max_size = max_size
        self._h.max_size = max_size
        self._buffers = []
        self._batches = []
        self._stash = []

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

    def send(self, message: Payload, type: int = 1, flags: int = 0, *, block: bool = True, timeout: Optional[float] = None) -> None:
        """Send `message` (bytes-like, or str as UTF-8) with message type `type` (>= 1).

        Blocks while the queue is full, unless ``block=False`` (then
        :class:`QueueFullError`) or until `timeout` seconds pass
        (:class:`QueueTimeoutError`).
        """
        data = message if message.__class__ is bytes else payload(message)
        if flags or not block or timeout is not None:
            flags, deadline = send_options(flags, block, timeout)
            self._send_data(data, type, flags, deadline, timeout, _NULL)
            return
        try:
            r = _put(self._h, type, data, len(data))
        except (TypeError, OverflowError):
            raise _bad_type(type, _check_send_type) from None
        if r:
            self._send_data(data, type, 0, -1, None, _NULL, r)

    def _send_data(self, data: Any, mtype: int, flags: int, deadline: int, timeout: Optional[float], token: Any, r: int = _EINTR) -> None:
        """Send checked arguments, resuming after signal handlers ran (PEP 475).

        `r` is the result of an attempt already made; the default makes the first one.
        """
        h = self._h
        size = len(data)
        while r:
            if r != _EINTR:
                raise self._send_error(-r, size, timeout, mtype)
            try:
                r = _send(h, mtype, data, size, flags, deadline, token)
            except (TypeError, OverflowError):
                raise _bad_type(mtype, _check_send_type) from None

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
        if err == errno.EBUSY:
            return error_for(err, what, "the wake-up signal was taken over by another handler; choose another with sysvmq.set_wakeup_signal()")
        return error_for(err, what)

    def send_many(self, messages: Iterable[Payload], type: int = 1, *, block: bool = True, timeout: Optional[float] = None) -> int:
        """Send every message of `messages` with type `type`, in one call into C.

        Returns how many were sent (all of them). The first failure stops the batch
        and is raised with ``.sent``: how many went before it. `timeout` bounds the
        whole batch.
        """
        parts = [m if m.__class__ is bytes else _as_bytes(m) for m in messages]
        if not parts:
            return 0
        flags, deadline = send_options(0, block, timeout)
        lens = ffi.new("size_t[]", [len(p) for p in parts])
        data = b"".join(parts)
        sent = ffi.new("size_t *")
        h = self._h
        while True:
            try:
                r = lib.sysvmq_send_many(h, type, data, lens, len(parts), flags, deadline, _NULL, sent)
            except (TypeError, OverflowError):
                raise _bad_type(type, _check_send_type) from None
            if r == 0:
                return len(parts)
            if r != _EINTR:
                error = self._send_error(-r, len(parts[sent[0]]), timeout, type)
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

    def _take_loop(self, mtype: int, flags: int, deadline: int, timeout: Optional[float], dest: Any, cap: int, token: Any, entry: Any, n: int = _EINTR) -> int:
        """Receive into `entry`, resuming after signal handlers ran: the payload length.

        `n` is the result of an attempt already made; the default makes the first one.
        """
        h = self._h
        text = entry[0]
        while n < 0:
            if n != _EINTR:
                raise self._receive_error(-n, timeout, mtype)
            try:
                n = _receive(h, text, cap, mtype, flags, deadline, token, dest)
            except (TypeError, OverflowError):
                raise _bad_type(mtype, _check_receive_type) from None
        return n

    def _take_message(self, mtype: int, flags: int, deadline: int, timeout: Optional[float], dest: Any, cap: int, token: Any = _NULL) -> Tuple[int, int, bytes]:
        """One message with checked options: (length, type, payload or b"" when copied into `dest`)."""
        if self._stash:
            stashed = self._from_stash(mtype, flags, dest, cap)
            if stashed is not None:
                return stashed
        buffers = self._buffers
        try:
            entry = buffers.pop()
        except IndexError:
            entry = self._buffer()
        n = self._take_loop(mtype, flags, deadline, timeout, dest, cap, token, entry)
        taken = n, entry[1][0], b"" if dest is not _NULL else _unpack(entry[0], n)
        buffers.append(entry)
        return taken

    def _from_stash(self, mtype: int, flags: int, dest: Any, cap: int) -> Optional[Tuple[int, int, bytes]]:
        """The stashed message this receive would have got from the kernel, if any."""
        stash = list(self._stash)  # a snapshot: other threads may take from the stash too
        if mtype == 0:
            candidates = stash
        elif mtype > 0 and flags & _MSG_EXCEPT:
            candidates = [m for m in stash if m.type != mtype]
        elif mtype > 0:
            candidates = [m for m in stash if m.type == mtype]
        else:
            eligible = [m for m in stash if m.type <= -mtype]
            lowest = min((m.type for m in eligible), default=0)
            candidates = [m for m in eligible if m.type == lowest]
        for message in candidates:
            data = message.data
            if len(data) > cap:
                if not flags & lib.MSG_NOERROR:
                    raise self._receive_error(errno.E2BIG, None, mtype)
                data = data[:cap]
            try:
                self._stash.remove(message)  # equal messages are interchangeable
            except ValueError:
                continue
            if dest is not _NULL:
                ffi.memmove(dest, data, len(data))
                return len(data), message.type, b""
            return len(data), message.type, data
        return None

    def receive(self, type: int = 0, flags: int = 0, *, block: bool = True, timeout: Optional[float] = None, truncate: bool = False, exclude: bool = False) -> bytes:
        """The payload of the next message selected by `type`.

        `type` 0 takes the first message; > 0 the first of exactly that type
        (``exclude=True``: of any other type); < 0 the first of the lowest type
        <= abs(type). ``truncate=True`` cuts a message longer than max_size
        instead of raising :class:`MessageTooLargeError`.
        """
        if flags or not block or truncate or exclude or self._stash:
            flags, deadline = receive_options(type, flags, block, timeout, truncate, exclude)
            return self._take_message(type, flags, deadline, timeout, _NULL, self._max_size)[2]
        # The common case, kept to the bone (receive_message mirrors it). A buffer goes
        # back on the free list only after its payload is copied out; if anything
        # raises in between, the buffer is simply dropped.
        if timeout is not None and timeout.__class__ is not float and timeout.__class__ is not int:
            deadline_ns(timeout)  # raises the right error for any other kind of timeout
        buffers = self._buffers
        try:
            entry = buffers.pop()
        except IndexError:
            entry = self._buffer()
        text = entry[0]
        try:
            if timeout is None:
                n = _take(self._h, text, type)
            else:
                n = _take_within(self._h, text, type, timeout, entry[2])
        except (TypeError, OverflowError):
            raise _bad_type(type, _check_receive_type) from None
        if n < 0:
            n = self._retry_take(n, type, timeout, entry)
        data: bytes = _unpack(text, n)
        buffers.append(entry)
        return data

    def receive_message(self, type: int = 0, flags: int = 0, *, block: bool = True, timeout: Optional[float] = None, truncate: bool = False, exclude: bool = False) -> Message:
        """Like :meth:`receive`, but a :class:`Message` with the type as well."""
        if flags or not block or truncate or exclude or self._stash:
            flags, deadline = receive_options(type, flags, block, timeout, truncate, exclude)
            _, mtype, data = self._take_message(type, flags, deadline, timeout, _NULL, self._max_size)
            return _new_message((mtype, data))
        if timeout is not None and timeout.__class__ is not float and timeout.__class__ is not int:
            deadline_ns(timeout)  # raises the right error for any other kind of timeout
        buffers = self._buffers
        try:
            entry = buffers.pop()
        except IndexError:
            entry = self._buffer()
        text = entry[0]
        try:
            if timeout is None:
                n = _take(self._h, text, type)
            else:
                n = _take_within(self._h, text, type, timeout, entry[2])
        except (TypeError, OverflowError):
            raise _bad_type(type, _check_receive_type) from None
        if n < 0:
            n = self._retry_take(n, type, timeout, entry)
        message = _new_message((entry[1][0], _unpack(text, n)))
        buffers.append(entry)
        return message

    def receive_into(self, buffer: Any, type: int = 0, flags: int = 0, *, block: bool = True, timeout: Optional[float] = None, truncate: bool = False, exclude: bool = False) -> Tuple[int, int]:
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
        flags, deadline = receive_options(type, flags, block, timeout, truncate, exclude)
        n, mtype, _ = self._take_message(type, flags, deadline, timeout, dest, min(len(dest), self._max_size))
        return n, mtype

    def receive_many(self, max_count: int, type: int = 0, *, block: bool = True, timeout: Optional[float] = None, truncate: bool = False, exclude: bool = False) -> List[bytes]:
        """Up to `max_count` payloads in one call into C.

        Waits (per `block`/`timeout`) only for the first message, then takes only
        what is already waiting. Never loses a message: one that stops the batch
        (too large, queue removed ...) stays queued and the next call reports it.
        """
        max_count = _check_int("max_count", max_count, 1, _INT_MAX)
        flags, deadline = receive_options(type, 0, block, timeout, truncate, exclude)
        if self._stash:
            stashed = self._from_stash(type, flags, _NULL, self._max_size)
            if stashed is not None:
                return [stashed[2]]
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
            try:
                n = lib.sysvmq_receive_many(h, out, outcap, cap, type, flags, deadline, _NULL, slots, offsets, lens, types)
            except (TypeError, OverflowError):
                raise _bad_type(type, _check_receive_type) from None
            if n >= 0:
                break
            if n != _EINTR:
                raise self._receive_error(-n, timeout, type)
        view = ffi.buffer(out, outcap)
        messages = [view[o : o + size] for o, size in zip(ffi.unpack(offsets, n), ffi.unpack(lens, n))]
        batches.append(entry)
        return messages

    def peek(self, index: int = 0) -> Message:
        """A copy of the message at position `index` (0 = first), left in the queue.

        Linux MSG_COPY: needs a kernel built with CONFIG_CHECKPOINT_RESTORE.
        """
        index = _check_int("index", index, 0, LONG_MAX)
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
        """:meth:`send` for asyncio: waits for room without blocking the event loop."""
        await aio.send(self, message, type, timeout)

    async def receive_async(self, type: int = 0, *, timeout: Optional[float] = None, truncate: bool = False, exclude: bool = False) -> bytes:
        """:meth:`receive` for asyncio. Cancelling it never loses a message (see sysvmq.aio)."""
        return (await aio.receive_message(self, type, timeout, truncate, exclude)).data

    async def receive_message_async(self, type: int = 0, *, timeout: Optional[float] = None, truncate: bool = False, exclude: bool = False) -> Message:
        """:meth:`receive_message` for asyncio. Cancelling it never loses a message."""
        return await aio.receive_message(self, type, timeout, truncate, exclude)

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
            raise error_for(-r, f"stat {self._describe()}", "reading a queue's stats needs read permission" if -r == errno.EACCES else None)
        return stats_from(ds, self._id)

    def set(self, *, mode: Optional[int] = None, uid: Optional[int] = None, gid: Optional[int] = None, max_bytes: Optional[int] = None) -> None:
        """Change the queue's permission bits, owner or capacity (IPC_SET)."""
        values = [
            -1 if mode is None else _check_int("mode", mode, 0, 0o777),
            -1 if uid is None else _check_int("uid", uid, 0, 0xFFFFFFFE),
            -1 if gid is None else _check_int("gid", gid, 0, 0xFFFFFFFE),
            -1 if max_bytes is None else _check_int("max_bytes", max_bytes, 1, (1 << 63) - 1),
        ]
        self._check_open("set")
        self._h.capacity = 0  # read the capacity afresh at the next full queue
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
            raise self._error(-r, f"close {self._describe()}")

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

