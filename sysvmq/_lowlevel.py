"""The layer that speaks cdata: receive buffers, the general send and receive loops (PEP 475 retries, errors),
batches, zero-copy, peek and the async wait.

``QueueCore`` holds a handle's C state; ``MessageQueue`` (sysvmq.queue) derives from it and adds the public
methods, with the hand-tuned single-message paths. Arguments reach this layer already checked (sysvmq._args).
"""

import collections
import errno
import functools
import struct
import sys
from array import array
from typing import Any, Callable, Deque, Dict, List, NamedTuple, Optional, Tuple

from sysvmq import _exit
from sysvmq._args import MSG_COPY, bad_type, check_send_type, deadline_ns, seconds_text
from sysvmq._ctypes import ffi, lib
from sysvmq._log import debug, report
from sysvmq.errors import MessageTooLargeError, SysVMQError, error_for
from sysvmq.stats import KEY_MASK, msgmax

__all__ = ["WAIT_FOREVER", "Message", "Options", "QueueCore", "ReceiveBuffer", "new_message"]

_send = lib.sysvmq_send
_receive = lib.sysvmq_receive
_unpack = ffi.unpack
_NULL = ffi.NULL
_EINTR = -errno.EINTR
_EDOM = -errno.EDOM
_alloc = ffi.new_allocator(should_clear_after_alloc=False)
_HEADER = ffi.offsetof("struct sysvmq_msgbuf", "mtext")
#: The deque type of the free lists: pop and append are atomic, and unlike a list's they
#: never reallocate as it empties and fills again, one call after another.
FreeList = collections.deque
#: The largest out-buffer receive_many() uses: a batch stops when it is full.
BATCH_BYTES = 1 << 20
#: receive_many lays message i out at an offset aligned to a long, its payload after the type.
_ALIGN = ffi.sizeof("long")
#: The array typecode of size_t: send_many hands C its lengths in one buffer.
_SIZE_T = next(code for code in "QLI" if array(code).itemsize == ffi.sizeof("size_t"))
#: Struct objects that cut a batch of equal-sized messages into bytes in one C loop, by
#: (count, size); a bounded cache, emptied when full.
_SPLITTERS: Dict[Tuple[int, int], struct.Struct] = {}
_SPLITTERS_MAX = 64
#: Batches of more messages are cut by slicing: a Struct costs ~32 bytes per message, and the
#: system calls dominate such batches anyway.
_SPLIT_MAX = 1024
_PEEK_ERRORS = {  # what peek() says of the errors only it meets; others as any call's
    errno.ENOMSG: "the queue holds fewer than {count} messages",
    errno.ENOSYS: "this kernel was built without CONFIG_CHECKPOINT_RESTORE",
    errno.E2BIG: "that message is larger than max_size={max_size} bytes; peek with a handle of a larger max_size",
}


class Message(NamedTuple):
    """A received message: its type and its payload."""

    type: int
    data: bytes


#: Message((type, data)) without the keyword handling of Message(type, data): the hot path's.
new_message: Callable[[Tuple[int, bytes]], Message] = functools.partial(tuple.__new__, Message)


def undelivered(error: BaseException, messages: List[Message]) -> None:
    """Messages a call took and could not put back when an exception ended it (the queue
    stayed full for a second: senders filled the room): on that exception, as
    ``.undelivered``, so that none is lost unseen."""
    try:
        error.undelivered = [*getattr(error, "undelivered", ()), *messages]  # type: ignore[attr-defined]
    except AttributeError:  # pragma: no cover - an exception type with __slots__
        pass
    debug(
        "%d message(s) could not be put back (the queue stayed full): on the exception as .undelivered", len(messages)
    )


def undelivered_in(error: BaseException, buffer: "ReceiveBuffer") -> None:
    """undelivered() for the message a failed sysvmq_return left in `buffer`."""
    _, view, fields = buffer
    undelivered(error, [new_message((fields[MTYPE], view[: fields[HELD]]))])
    fields[HELD] = -1


class Options(NamedTuple):
    """The checked options of one call."""

    flags: int  # raw msgsnd / msgrcv flags
    deadline: int  # CLOCK_MONOTONIC ns; -1: none
    timeout: Optional[float]  # what the deadline came from, for the error message


#: A blocking call with no flags and no deadline.
WAIT_FOREVER = Options(0, -1, None)


#: One message's worth of memory for msgrcv, from the handle's free list:
#: ``rb, view, fields = buffer`` - the ``sysvmq_rbuf *`` (it points at the handle, so the
#: fast receive passes C one argument; msgrcv writes its ``mtype`` and ``mtext``), a cffi
#: buffer over its payload room, which ``view[:n]`` copies into bytes, and a memoryview of
#: its header as C longs (a cdata `long *` on PyPy): ``fields[HELD]`` and ``fields[MTYPE]`` read and write those
#: fields for a fraction of what cdata attribute access costs. A plain tuple: the
#: cheapest thing to unpack. A buffer on the free list has ``fields[HELD] == -1``: every
#: call resets it once the payload is copied out, and drops a buffer it could not.
ReceiveBuffer = Tuple[Any, Any, Any]
_LONG = ffi.sizeof("long")
HELD = ffi.offsetof("sysvmq_rbuf", "held") // _LONG
MTYPE = ffi.offsetof("sysvmq_rbuf", "mtype") // _LONG
#: CPython runs the C loops of memoryview, array and struct fastest; PyPy's JIT runs cdata
#: pointers and plain Python loops fastest (memoryview access costs it 20-90 ns, a cdata
#: pointer 1 ns): each interpreter gets the variant it runs best.
CPYTHON = sys.implementation.name == "cpython"


class BatchBuffer(NamedTuple):
    """receive_many's memory: the ``sysvmq_batch *`` (messages back to back in its out
    area, and where each one is), a view of the out area, its size and slots, and the
    arrays the struct points into (kept alive here)."""

    batch: Any
    view: Any
    size: int
    slots: int
    arrays: Tuple[Any, ...]


def _batch_buffer(h: Any, size: int, slots: int) -> BatchBuffer:
    slots = max(slots, 64)
    arrays = out, offsets, lens, types = (
        _alloc("char[]", size),
        ffi.new("size_t[]", slots),
        ffi.new("size_t[]", slots),
        ffi.new("long[]", slots),
    )
    batch = ffi.new("sysvmq_batch *", [h, out, size, slots, offsets, lens, types, 0])
    _exit.watch_batch(batch)
    return BatchBuffer(batch, ffi.buffer(out, size), size, slots, arrays)


def _splitter(count: int, size: int) -> struct.Struct:
    """A Struct whose unpack_from() gives the payloads of `count` messages of `size` bytes
    each, laid out as sysvmq_receive_many lays them out."""
    splitter = _SPLITTERS.get((count, size))
    if splitter is None:
        gap = -(_HEADER + size) % _ALIGN + _HEADER  # from the end of one payload to the next
        layout = f"{_HEADER}x{size}s" + f"{gap}x{size}s" * (count - 1)
        if len(_SPLITTERS) >= _SPLITTERS_MAX:
            _SPLITTERS.clear()
        splitter = _SPLITTERS[(count, size)] = struct.Struct(layout)
    return splitter


class QueueCore:
    """A handle's C state, and every operation on it that is not a hand-tuned fast path."""

    __slots__ = ("__weakref__", "_batches", "_buffers", "_h", "_id", "_key", "_max_size")

    _h: Any
    _key: int
    _id: int
    _max_size: int
    _buffers: Deque[ReceiveBuffer]  # free receive buffers; a call takes one, so threads never share
    _batches: Deque[BatchBuffer]  # free receive_many buffers

    def _setup(self, signed_key: int, key_known: bool, msqid: int, max_size: int) -> None:
        self._h = ffi.new("sysvmq_handle *")
        self._h.id = msqid
        self._h.key = signed_key
        self._h.key_known = key_known
        self._h.max_size = max_size
        self._key = signed_key & KEY_MASK
        self._id = msqid
        self._max_size = max_size
        self._buffers = FreeList()
        self._batches = FreeList()

    def _describe(self) -> str:
        return f"queue key={self._key:#010x} id={self._id}"

    # ---- errors ----

    def _error(self, err: int, what: str, timeout: Optional[float] = None) -> SysVMQError:
        report()  # a call that fails is a slow path: say what the wait machinery noted
        if err == errno.ETIMEDOUT:
            return error_for(err, what, f"nothing happened within the timeout of {seconds_text(timeout)} s")
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
                f"(stats().max_bytes; Linux counts each message against it too, so 0 holds none); "
                f"raise it with set(max_bytes=...) (up to kernel.msgmnb)",
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
        if CPYTHON:
            lens = ffi.from_buffer("size_t[]", array(_SIZE_T, map(len, parts)))
        else:
            lens = ffi.new("size_t[]", [len(p) for p in parts])
        data = b"".join(parts)
        sent = ffi.new("size_t *")
        h = self._h
        try:
            while True:
                r = lib.sysvmq_send_many(h, mtype, data, lens, len(parts), options.flags, options.deadline, _NULL, sent)
                if r == 0:
                    return len(parts)
                if r != _EINTR:
                    raise self._send_error(-r, len(parts[sent[0]]), options.timeout, mtype)
        except BaseException as error:  # also Ctrl-C from a handler: how many went, so none is sent twice
            error.sent = int(sent[0])  # type: ignore[attr-defined]
            raise
        finally:
            ffi.release(lens)  # a view of an array: no export outlives the call (sysvmq._args.exported)

    # ---- receiving ----

    def _buffer(self) -> ReceiveBuffer:
        """A new receive buffer for max_size bytes, for this handle."""
        rb = _alloc("sysvmq_rbuf *", {"mtext": self._max_size})
        rb.handle = self._h  # both live as long as this object: the buffer sits in its free list
        rb.held = -1
        _exit.watch_buffer(rb)
        if CPYTHON:
            fields = memoryview(ffi.buffer(rb, ffi.offsetof("sysvmq_rbuf", "mtext"))).cast("l")
        else:
            fields = ffi.cast("long *", rb)
        return rb, ffi.buffer(rb.mtext, self._max_size), fields

    def _receive_loop(
        self, mtype: int, options: Options, buffer: ReceiveBuffer, dest: Any = _NULL, n: int = _EINTR
    ) -> int:
        """Receive into `buffer` (and `dest`, if given), resuming after signal handlers ran:
        the payload length. `n` is the result of an attempt already made; the default makes
        the first one."""
        rb = buffer[0]
        flags, deadline, timeout = options
        cap = self._max_size if dest is _NULL else min(len(dest), self._max_size)
        while n < 0:
            if n != _EINTR:
                raise self._receive_error(-n, timeout)
            n = _receive(rb, cap, mtype, flags, deadline, _NULL, dest)
        return n

    def _resume_fast_receive(self, n: int, mtype: int, timeout: Optional[float], buffer: ReceiveBuffer) -> int:
        """After a failed fast-path receive: raise, or resume it after signal handlers ran."""
        if n == _EDOM:
            deadline_ns(timeout)  # raises: a negative or NaN timeout
        deadline = -1 if timeout is None or n != _EINTR else buffer[0].deadline_ns
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
        rb, view, fields = buffer
        fields[HELD] = -1
        taken = None
        try:
            n = self._receive_loop(mtype, options, buffer, dest)
            taken = n, fields[MTYPE], b"" if dest is not _NULL else view[:n]
            fields[HELD] = -1  # in Python now (see sysvmq.queue's receive)
            self._buffers.append(buffer)
            return taken
        except BaseException as error:  # see MessageQueue.receive
            if taken is None:
                if lib.sysvmq_return(rb) < 0:
                    undelivered_in(error, buffer)
            else:  # copied out: the buffer may be another call's by now
                n, got_type, data = taken
                if lib.sysvmq_return_copy(self._h, got_type, data if dest is _NULL else dest, n) < 0:
                    undelivered(error, [new_message((got_type, data if dest is _NULL else bytes(dest[:n])))])
            raise

    def _receive_batch(self, max_count: int, mtype: int, options: Options) -> List[bytes]:
        """Up to `max_count` payloads in one call into C; only the first may wait."""
        cap = self._max_size
        size = max(BATCH_BYTES, _HEADER + cap)
        slots = min(max_count, size // _HEADER)
        batches = self._batches
        try:
            buffer = batches.pop()
        except IndexError:
            buffer = _batch_buffer(self._h, size, slots)
        if buffer.size != size or buffer.slots < slots:
            buffer = _batch_buffer(self._h, size, slots)
        batch, view, _, _, (_, offsets, lens, types) = buffer
        flags, deadline, timeout = options
        batch.held = 0
        try:
            while True:
                n = lib.sysvmq_receive_many(batch, cap, mtype, flags, deadline, _NULL, slots)
                if n >= 0:
                    break
                if n != _EINTR:
                    raise self._receive_error(-n, timeout)
            sizes = ffi.unpack(lens, n)
            if CPYTHON and n <= _SPLIT_MAX and sizes.count(sizes[0]) == n:  # all of one size: one C loop
                messages = list(_splitter(n, sizes[0]).unpack_from(view))
            else:
                messages = [view[o : o + length] for o, length in zip(ffi.unpack(offsets, n), sizes)]
        except BaseException as error:  # Ctrl-C, sys.exit() in a handler, MemoryError: the messages go back, in order
            total = batch.held
            if lib.sysvmq_return_many(batch) < 0:
                left = range(total - batch.held, total)
                undelivered(error, [new_message((types[i], view[offsets[i] : offsets[i] + lens[i]])) for i in left])
            raise
        batch.held = 0  # in Python now (see sysvmq.queue's receive)
        batches += (buffer,)  # not a call: CPython 3.11+ runs no signal handler before the return
        return messages

    def _peek(self, index: int) -> Message:
        what = f"peek at message {index} of {self._describe()}"
        if not MSG_COPY:
            raise error_for(errno.ENOSYS, what, "this platform has no MSG_COPY")
        buffer = self._spare_buffer()
        rb, view, fields = buffer
        try:
            n = _receive(rb, self._max_size, index, MSG_COPY | lib.IPC_NOWAIT, -1, _NULL, _NULL)
            if n < 0:
                hint = _PEEK_ERRORS.get(-n, "").format(count=index + 1, max_size=self._max_size)
                raise error_for(-n, what, hint) if hint else self._error(-n, what)
            return new_message((fields[MTYPE], view[:n]))
        finally:
            self._buffers.append(buffer)

    def _await_message(self, mtype: int, flags: int, seconds: float, token: Any) -> Optional[Message]:
        """Block until a message `mtype` selects is waiting, taking none (PEP 475 retries): None;
        a zero-length message that could not be put back is taken: it is returned. After `seconds`,
        QueueTimeoutError with no report (a log handler's error would replace it): the caller only looks around."""
        h = self._h
        deadline = deadline_ns(seconds)
        taken = ffi.new("long *")
        while True:
            r = lib.sysvmq_await(h, mtype, flags, deadline, token, taken)
            if r >= 0:
                return None if r == 0 else new_message((int(taken[0]), b""))
            if r != _EINTR:
                raise error_for(-r, "await") if r == -errno.ETIMEDOUT else self._receive_error(-r, None)

    def _return_to_queue(self, message: Optional[Message]) -> bool:
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
