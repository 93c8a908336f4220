"""The layer that speaks cdata: receive buffers, the general send and receive loops
(PEP 475 retries, errors), batches, zero-copy, peek and the async wait.

``QueueCore`` holds a handle's C state; ``MessageQueue`` (sysvmq.queue) derives from
it and adds the public methods, with the hand-tuned single-message paths. Arguments
reach this layer already checked (sysvmq._args).
"""

import errno
import functools
from typing import Any, Callable, List, NamedTuple, Optional, Tuple

from sysvmq._args import MSG_COPY, bad_type, check_send_type, deadline_ns
from sysvmq._log import debug, report
from sysvmq._sysvmq_cffi import ffi, lib
from sysvmq.errors import MessageTooLargeError, SysVMQError, error_for
from sysvmq.stats import KEY_MASK, msgmax

__all__ = ["PLAIN", "Message", "Options", "QueueCore", "ReceiveBuffer", "new_message"]

_send = lib.sysvmq_send
_receive = lib.sysvmq_receive
_unpack = ffi.unpack
_NULL = ffi.NULL
_EINTR = -errno.EINTR
_EDOM = -errno.EDOM
_alloc = ffi.new_allocator(should_clear_after_alloc=False)
_HEADER = ffi.offsetof("struct sysvmq_msgbuf", "mtext")
#: The largest out-buffer receive_many() uses: a batch stops when it is full.
BATCH_BYTES = 1 << 20


class Message(NamedTuple):
    """A received message: its type and its payload."""

    type: int
    data: bytes


#: Message((type, data)) without the keyword handling of Message(type, data): the hot path's.
new_message: Callable[[Tuple[int, bytes]], Message] = functools.partial(tuple.__new__, Message)


class Options(NamedTuple):
    """The checked options of one call."""

    flags: int  # raw msgsnd / msgrcv flags
    deadline: int  # CLOCK_MONOTONIC ns; -1: none
    timeout: Optional[float]  # what the deadline came from, for the error message


#: A blocking call with no flags and no deadline.
PLAIN = Options(0, -1, None)


#: One message's worth of memory for msgrcv, from the handle's free list:
#: ``text, mtype, deadline, owner = buffer`` - the payload (char *, right after the type),
#: the type msgrcv wrote (long *), where a timed wait left its deadline for a retry after
#: EINTR (long long *), and the allocation both point into. A plain tuple: the fast paths
#: index it (cheaper than unpacking four, and than a NamedTuple's attributes), the rest
#: unpack it by name.
ReceiveBuffer = Tuple[Any, Any, Any, Any]


class BatchBuffer(NamedTuple):
    """receive_many's memory: messages back to back in `out`, and where each one is."""

    out: Any
    size: int
    slots: int
    offsets: Any
    lens: Any
    types: Any


def _batch_buffer(size: int, slots: int) -> BatchBuffer:
    slots = max(slots, 64)
    return BatchBuffer(
        _alloc("char[]", size),
        size,
        slots,
        ffi.new("size_t[]", slots),
        ffi.new("size_t[]", slots),
        ffi.new("long[]", slots),
    )


class QueueCore:
    """A handle's C state, and every operation on it that is not a hand-tuned fast path."""

    __slots__ = ("__weakref__", "_batches", "_buffers", "_h", "_id", "_key", "_max_size")

    _h: Any
    _key: int
    _id: int
    _max_size: int
    _buffers: List[ReceiveBuffer]  # free receive buffers; a call takes one, so threads never share
    _batches: List[BatchBuffer]  # free receive_many buffers

    def _setup(self, signed_key: int, key_known: bool, msqid: int, max_size: int) -> None:
        self._h = ffi.new("sysvmq_handle *")
        self._h.id = msqid
        self._h.key = signed_key
        self._h.key_known = key_known
        self._h.max_size = max_size
        self._key = signed_key & KEY_MASK
        self._id = msqid
        self._max_size = max_size
        self._buffers = []
        self._batches = []

    def _describe(self) -> str:
        return f"queue key={self._key:#010x} id={self._id}"

    # ---- errors ----

    def _error(self, err: int, what: str, timeout: Optional[float] = None) -> SysVMQError:
        report()  # a call that fails is a slow path: say what the wait machinery noted
        if err == errno.ETIMEDOUT:
            return error_for(err, what, f"nothing happened within the timeout of {timeout} s")
        if err == errno.EAGAIN:
            return error_for(err, what, "the queue is full (block=False)")
        if err == errno.ENOMSG:
            return error_for(err, what, "no message of the requested type is waiting (block=False)")
        return error_for(err, what)

    def _send_error(self, err: int, size: int, timeout: Optional[float], mtype: int) -> Exception:
        what = f"send to {self._describe()}"
        if err == errno.EDOM:
            return bad_type(mtype, check_send_type)
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

    def _receive_error(self, err: int, timeout: Optional[float]) -> Exception:
        what = f"receive from {self._describe()}"
        if err == errno.E2BIG:
            return error_for(
                err,
                what,
                f"the next message is larger than max_size={self._max_size} bytes and stays in the "
                "queue; receive it with a larger max_size, or truncate=True to cut it",
            )
        return self._error(err, what, timeout)

    # ---- sending ----

    def _send_loop(self, data: Any, mtype: int, options: Options, token: Any = _NULL, r: int = _EINTR) -> None:
        """Send checked arguments, resuming after signal handlers ran (PEP 475).

        `r` is the result of an attempt already made; the default makes the first one.
        """
        h = self._h
        size = len(data)
        flags, deadline, timeout = options
        while r:
            if r != _EINTR:
                raise self._send_error(-r, size, timeout, mtype)
            r = _send(h, mtype, data, size, flags, deadline, token)

    def _send_batch(self, parts: List[bytes], mtype: int, options: Options) -> int:
        """Every one of `parts` (exact bytes), in one call into C: how many were sent."""
        lens = ffi.new("size_t[]", [len(p) for p in parts])
        data = b"".join(parts)
        sent = ffi.new("size_t *")
        h = self._h
        while True:
            r = lib.sysvmq_send_many(h, mtype, data, lens, len(parts), options.flags, options.deadline, _NULL, sent)
            if r == 0:
                return len(parts)
            if r != _EINTR:
                error = self._send_error(-r, len(parts[sent[0]]), options.timeout, mtype)
                error.sent = int(sent[0])  # type: ignore[attr-defined]
                raise error

    # ---- receiving ----

    def _buffer(self) -> ReceiveBuffer:
        """A receive buffer for max_size bytes."""
        raw = _alloc("char[]", _HEADER + self._max_size)
        return ffi.cast("char *", raw) + _HEADER, ffi.cast("long *", raw), ffi.new("long long *"), raw

    def _receive_loop(
        self, mtype: int, options: Options, buffer: ReceiveBuffer, dest: Any = _NULL, n: int = _EINTR
    ) -> int:
        """Receive into `buffer` (and `dest`, if given), resuming after signal handlers ran:
        the payload length. `n` is the result of an attempt already made; the default makes
        the first one."""
        h = self._h
        text = buffer[0]
        flags, deadline, timeout = options
        cap = self._max_size if dest is _NULL else min(len(dest), self._max_size)
        while n < 0:
            if n != _EINTR:
                raise self._receive_error(-n, timeout)
            n = _receive(h, text, cap, mtype, flags, deadline, _NULL, dest)
        return n

    def _resume_fast_receive(self, n: int, mtype: int, timeout: Optional[float], buffer: ReceiveBuffer) -> int:
        """After a failed fast-path receive: raise, or resume it after signal handlers ran."""
        if n == _EDOM:
            deadline_ns(timeout)  # raises: a negative or NaN timeout
        _, _, deadline_slot, _ = buffer
        deadline = -1 if timeout is None or n != _EINTR else deadline_slot[0]
        return self._receive_loop(mtype, Options(0, deadline, timeout), buffer, _NULL, n)

    def _spare_buffer(self) -> ReceiveBuffer:
        """A receive buffer of this call's own: a free one, or a new one (the fast paths inline this)."""
        try:
            return self._buffers.pop()
        except IndexError:
            return self._buffer()

    def _receive_one(self, mtype: int, options: Options, dest: Any = _NULL) -> Tuple[int, int, bytes]:
        """One message with checked options: (length, type, payload; b"" when copied into `dest`)."""
        buffer = self._spare_buffer()
        n = self._receive_loop(mtype, options, buffer, dest)
        text, got_type, _, _ = buffer
        taken = n, got_type[0], b"" if dest is not _NULL else _unpack(text, n)
        self._buffers.append(buffer)
        return taken

    def _receive_batch(self, max_count: int, mtype: int, options: Options) -> List[bytes]:
        """Up to `max_count` payloads in one call into C; only the first may wait."""
        cap = self._max_size
        size = max(BATCH_BYTES, _HEADER + cap)
        slots = min(max_count, size // _HEADER)
        batches = self._batches
        try:
            batch = batches.pop()
        except IndexError:
            batch = _batch_buffer(size, slots)
        if batch.size != size or batch.slots < slots:
            batch = _batch_buffer(size, slots)
        out, _, _, offsets, lens, types = batch
        h = self._h
        flags, deadline, timeout = options
        while True:
            n = lib.sysvmq_receive_many(h, out, size, cap, mtype, flags, deadline, _NULL, slots, offsets, lens, types)
            if n >= 0:
                break
            if n != _EINTR:
                raise self._receive_error(-n, timeout)
        view = ffi.buffer(out, size)
        messages = [view[o : o + length] for o, length in zip(ffi.unpack(offsets, n), ffi.unpack(lens, n))]
        batches.append(batch)
        return messages

    def _peek(self, index: int) -> Message:
        what = f"peek at message {index} of {self._describe()}"
        if not MSG_COPY:
            raise error_for(errno.ENOSYS, what, "this platform has no MSG_COPY")
        buffer = self._spare_buffer()
        text, got_type, _, _ = buffer
        try:
            n = _receive(self._h, text, self._max_size, index, MSG_COPY | lib.IPC_NOWAIT, -1, _NULL, _NULL)
            if n == -errno.ENOMSG:
                raise error_for(errno.ENOMSG, what, f"the queue holds fewer than {index + 1} messages")
            if n == -errno.ENOSYS:
                raise error_for(errno.ENOSYS, what, "this kernel was built without CONFIG_CHECKPOINT_RESTORE")
            if n < 0:
                raise self._receive_error(-n, None)
            return new_message((got_type[0], _unpack(text, n)))
        finally:
            self._buffers.append(buffer)

    def _await_message(self, mtype: int, options: Options, token: Any) -> Optional[Message]:
        """Block until a message `mtype` selects is waiting, taking none (PEP 475 retries):
        None. A zero-length message that could not be put back is taken: it is returned."""
        h = self._h
        flags, deadline, timeout = options
        taken = ffi.new("long *")
        while True:
            r = lib.sysvmq_await(h, mtype, flags, deadline, token, taken)
            if r == 0:
                return None
            if r == 1:
                return new_message((int(taken[0]), b""))
            if r != _EINTR:
                raise self._receive_error(-r, timeout)

    def _give_back(self, message: Optional[Message]) -> bool:
        """Put `message`, taken by a call whose caller is gone, back at the end of the queue,
        without waiting: whether it is back (or there was none)."""
        if message is None:
            return True
        back = _send(self._h, message.type, message.data, len(message.data), lib.IPC_NOWAIT, -1, _NULL) == 0
        outcome = "put it back at the end of the queue" if back else "could not put it back: its caller gets it"
        debug(
            "%s: an async receive whose caller is gone took a message of type %d; %s",
            self._describe(),
            message.type,
            outcome,
        )
        return back
