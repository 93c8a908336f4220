"""One open queue handle: its C state and every operation on it.

:class:`Handle` holds what C needs of a handle (the ``sysvmq_handle *``, the free lists of
receive buffers and batches) and does the work of sending and receiving with checked
arguments (sysvmq._args): the general loops (PEP 475 retries, errors), batches,
zero-copy, peek, the async wait and take, msgctl on its queue, close.
:class:`sysvmq.MessageQueue` derives from it and adds the public methods, with the
hand-tuned single-message paths, which use the C functions exported below.

Taken, held, handed over, returned: the rule no message is lost by
--------------------------------------------------------------------

A receive *takes* a message off its queue into a buffer, which *holds* it (its ``held``
is the length, -1 when it holds none) until Python has copied it out; then the call
*hands it over* to its caller by returning it. Anything may stop a call in between:
a signal handler that raises (Ctrl-C, ``sys.exit()``), MemoryError, a tracer. Such a
call *returns* the message to the end of its queue, with its type, as its first act
in the ``except`` block, before any other Python code can run (and raise again):

- from the buffer (``return_held`` / ``sysvmq_return``, ``sysvmq_return_many``) while
  the buffer still holds it;
- from the copy (``return_copy`` / ``sysvmq_return_copy``) once it is copied out, as the
  buffer may be another call's by then. A batch (``receive_many``) is returned from the
  batch even then, while it is still the call's: it is freed on the line that returns,
  where no tracer can raise first.

A message that cannot go back (the queue stays full for a second: senders fill the room)
is not lost either: it rides on the exception, as ``.undelivered`` (:func:`undelivered`).
A buffer on the free list always holds nothing, so that a process that exits knows what
its threads still hold (sysvmq._binding.process). The C functions that return messages
are called in two modules only: here, and in sysvmq.queue's hot paths, which follow this
rule in the same words.
"""

import collections
import errno
import functools
import struct
import sys
from array import array
from typing import Any, Callable, Deque, Dict, List, NamedTuple, Optional, Tuple, TypeVar

from sysvmq._args import Options, bad_type, check_send_type, deadline_ns, seconds_text
from sysvmq._binding import process, system
from sysvmq._binding.c import IPC_NOWAIT, MSG_COPY, ffi, lib
from sysvmq._log import debug
from sysvmq.errors import MessageDecodeError, MessageTooLargeError, SysVMQError, error_for

__all__ = [
    "HELD",
    "MTYPE",
    "NOTHING_HELD",
    "NULL",
    "Handle",
    "Message",
    "ReceiveBuffer",
    "new_message",
    "put",
    "return_copy",
    "return_held",
    "take",
    "take_type",
    "take_within",
    "undelivered",
    "undelivered_in",
]

_T = TypeVar("_T")

# The hot paths' C functions (sysvmq.queue), bound once: each lookup is paid per message.
put = lib.sysvmq_put
take = lib.sysvmq_take
take_type = lib.sysvmq_take_type
take_within = lib.sysvmq_take_within
return_held = lib.sysvmq_return
return_copy = lib.sysvmq_return_copy
#: What return_held() says when the buffer held nothing (the call had taken nothing).
NOTHING_HELD = 1
NULL = ffi.NULL

_report = system.report
_send = lib.sysvmq_send
_receive = lib.sysvmq_receive
_unpack = ffi.unpack
_NULL = NULL
_EINTR = -errno.EINTR
_EDOM = -errno.EDOM
_ENOMSG = -errno.ENOMSG
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
    """A received message: its type and its payload.

    :param type: the message type, 1 to LONG_MAX.
    :param data: the payload, as it was sent.
    """

    type: int
    data: bytes


#: Message((type, data)) without the keyword handling of Message(type, data): the hot path's.
new_message: Callable[[Tuple[int, bytes]], Message] = functools.partial(tuple.__new__, Message)


def undelivered(error: BaseException, messages: List[Message]) -> None:
    """Messages a call took and could not return to their queue when an exception ended
    it (the queue stayed full for a second: senders filled the room): on that exception,
    as ``.undelivered``, so that none is lost unseen."""
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
    process.watch_batch(batch)
    return BatchBuffer(batch, ffi.buffer(out, size), size, slots, arrays)


def _returned(error: BaseException, buffer: BatchBuffer, batches: Deque[BatchBuffer], total: int, back: int) -> None:
    """After a batch receive that `error` stopped returned the `total` messages its batch
    held to the queue (the return rule, module docstring; `back`: sysvmq_return_many's
    result): those that could not go back ride on `error`. The batch, holding nothing now,
    is free again."""
    batch, view, _, _, (_, offsets, lens, types) = buffer
    if back < 0:
        left = range(total - batch.held, total)
        undelivered(error, [new_message((types[i], view[offsets[i] : offsets[i] + lens[i]])) for i in left])
        batch.held = 0  # they ride on the exception: nothing for an exiting process to wait for
    batches.append(buffer)


def _return_freed(error: BaseException, buffer: BatchBuffer, batches: Deque[BatchBuffer], got: List[bytes]) -> None:
    """The return rule for a batch receive stopped after its batch went back to the free
    list (`got`: its messages, copied out), which CPython 3.9 and PyPy allow: they go
    back from the batch, taken off the free list again, unless another thread's call has
    it already. Then they ride on `error`, their types unknown (0): the batch's types are
    that call's now."""
    try:
        batches.remove(buffer)  # one C call: no other thread takes it meanwhile
    except ValueError:
        undelivered(error, [new_message((0, data)) for data in got])
        return
    buffer.batch.held = len(got)
    _returned(error, buffer, batches, buffer.batch.held, lib.sysvmq_return_many(buffer.batch))


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


class Handle:
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
        self._key = signed_key & system.KEY_MASK
        self._id = msqid
        self._max_size = max_size
        self._buffers = FreeList()
        self._batches = FreeList()

    def _describe(self) -> str:
        return f"queue key={self._key:#010x} id={self._id}"

    # ---- errors ----

    def _error(self, err: int, what: str, timeout: Optional[float] = None) -> SysVMQError:
        _report()  # a call that fails is a slow path: say what the wait machinery noted
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
            limit = system.kernel_msgmax()
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
        process.watch_buffer(rb)
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
        got, n = None, -1
        try:
            n = self._receive_loop(mtype, options, buffer, dest)
            # Handed over: the buffer holds nothing. The reset, then `got`: CPython 3.9 and
            # PyPy may run a signal handler between the two stores, and the except block
            # tells by `got` whether the buffer may be another call's already.
            fields[HELD], got = -1, (n, fields[MTYPE], b"" if dest is not _NULL else view[:n])
            self._buffers.append(buffer)
            return got
        except BaseException as error:  # the return rule (module docstring)
            if got is None and n >= 0 and fields[HELD] < 0:  # stopped before `got`: still this call's buffer
                got = (n, fields[MTYPE], b"" if dest is not _NULL else view[:n])
            if got is None:
                if return_held(rb) < 0:
                    undelivered_in(error, buffer)
            else:
                n, got_type, data = got
                if return_copy(self._h, got_type, data if dest is _NULL else dest, n) < 0:
                    undelivered(error, [new_message((got_type, data if dest is _NULL else bytes(dest[:n])))])
            raise

    def _receive_then(self, mtype: int, options: Options, then: Callable[[bytes], _T]) -> _T:
        """One message with checked options, its payload handed to `then`, whose result is
        returned. A MessageDecodeError `then` raises hands the message over: it carries it
        (sysvmq.Queue's). Anything else that stops `then` returns the message (the return
        rule): a signal handler's KeyboardInterrupt while it runs, or an error raised while
        that MessageDecodeError is built (MemoryError, a serializer's exception whose text
        cannot be made), which would carry nothing."""
        got = None
        try:
            got = self._receive_one(mtype, options)
            return then(got[2])
        except MessageDecodeError:
            raise  # `then` failed and handed the message over on it
        except BaseException as error:  # nothing was taken, or the message goes back
            if got is not None and return_copy(self._h, got[1], got[2], got[0]) < 0:
                undelivered(error, [new_message(got[1:])])
            raise

    def _returned_fast(
        self, error: BaseException, buffer: ReceiveBuffer, back: int, copied: Optional[Tuple[int, bytes]]
    ) -> bool:
        """What follows the C call with which a fast receive (sysvmq.queue) that `error`
        stopped returned its message, from its `copied` (type, payload) or from `buffer`:
        `back` is that call's result. True: the call took nothing, and only because C could
        not hold its type or timeout: the checked path is to make it again, and explain.
        A buffer the message was copied out of is not touched: it holds nothing of this
        call's, and may be on the free list, or another call's, already."""
        if copied is not None:
            if back < 0:
                undelivered(error, [new_message(copied)])
            return False
        if back == NOTHING_HELD and type(error) is OverflowError:
            self._buffers.append(buffer)
            return True
        if back < 0:
            undelivered_in(error, buffer)
        return False

    def _take_waiting(self, mtype: int, flags: int) -> Optional[Message]:
        """The message `mtype` and `flags` select if one is waiting, taken without waiting
        (the async receives take here, in the event loop's thread); None if none is."""
        buffer = self._spare_buffer()
        rb, view, fields = buffer
        fields[HELD] = -1
        message, n = None, -1
        try:
            n = _receive(rb, self._max_size, mtype, flags | IPC_NOWAIT, -1, _NULL, _NULL)
            while n < 0:
                if n == _ENOMSG:
                    self._buffers.append(buffer)
                    return None
                if n != _EINTR:
                    raise self._receive_error(-n, None)
                n = _receive(rb, self._max_size, mtype, flags | IPC_NOWAIT, -1, _NULL, _NULL)
            fields[HELD], message = -1, new_message((fields[MTYPE], view[:n]))  # handed over, as in _receive_one
            self._buffers.append(buffer)
            return message
        except BaseException as error:  # the return rule (module docstring): the C call first
            copied: Optional[Tuple[int, bytes]] = message
            if copied is None and n >= 0 and fields[HELD] < 0:  # as in _receive_one
                copied = (fields[MTYPE], view[:n])
            if copied is None:
                if return_held(rb) < 0:
                    undelivered_in(error, buffer)
            elif return_copy(self._h, copied[0], copied[1], n) < 0:
                undelivered(error, [new_message(copied)])
            raise

    def _spare_batch(self, size: int, slots: int) -> BatchBuffer:
        """A batch of this call's own, of `size` bytes and at least `slots` slots: a free
        one, or a new one."""
        try:
            buffer = self._batches.pop()
        except IndexError:
            return _batch_buffer(self._h, size, slots)
        if buffer.size != size or buffer.slots < slots:
            return _batch_buffer(self._h, size, slots)
        return buffer

    def _receive_batch(self, max_count: int, mtype: int, options: Options) -> List[bytes]:
        """Up to `max_count` payloads in one call into C; only the first may wait."""
        cap = self._max_size
        size = max(BATCH_BYTES, _HEADER + cap)
        slots = min(max_count, size // _HEADER)
        batches = self._batches
        buffer = self._spare_batch(size, slots)
        batch, view, _, _, (_, offsets, lens, _) = buffer
        flags, deadline, timeout = options
        batch.held = 0
        # `mine` goes into the free list whole or not at all, in one C operation: emptied, it
        # says the batch was freed (another call may have it), which no flag stored before or
        # after could say (CPython 3.9 and PyPy run signal handlers between stores).
        mine, got = iter((buffer,)), None
        try:
            while True:
                n = lib.sysvmq_receive_many(batch, cap, mtype, flags, deadline, _NULL, slots)
                if n >= 0:
                    break
                if n != _EINTR:
                    raise self._receive_error(-n, timeout)
            sizes = ffi.unpack(lens, n)
            # Handed over: the batch holds nothing. One statement, so that nothing can raise
            # between the copy and the reset.
            if CPYTHON and n <= _SPLIT_MAX and sizes.count(sizes[0]) == n:  # all of one size: one C loop
                got, batch.held = list(_splitter(n, sizes[0]).unpack_from(view)), 0
            else:
                got, batch.held = [view[o : o + length] for o, length in zip(ffi.unpack(offsets, n), sizes)], 0
            # Then one line: a tracer's line event (pdb's quit) comes before the batch is
            # freed, not between that and the return. No call: CPython 3.10+ runs no signal
            # handler on this line either.
            batches += mine; return got  # noqa: E702  # fmt: skip
        except BaseException as error:  # Ctrl-C, sys.exit() in a handler, MemoryError, a tracer
            if got is not None and next(mine, None) is None:  # freed already: a handler ran after that
                _return_freed(error, buffer, batches, got)
                raise
            if got is not None:
                batch.held = n  # copied out, and still in the batch: it goes back from there
            # The return rule: the C call first, before a call into Python where another
            # pending signal handler could raise.
            _returned(error, buffer, batches, batch.held, lib.sysvmq_return_many(batch))
            raise

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
        a zero-length message that could not be returned at once is taken: it is returned here.
        After `seconds`, QueueTimeoutError with no report (a log handler's error would replace
        it): the caller only looks around."""
        h = self._h
        deadline = deadline_ns(seconds)
        held_type = ffi.new("long *")
        while True:
            r = lib.sysvmq_await(h, mtype, flags, deadline, token, held_type)
            if r >= 0:
                return None if r == 0 else new_message((int(held_type[0]), b""))
            if r != _EINTR:
                raise error_for(-r, "await") if r == -errno.ETIMEDOUT else self._receive_error(-r, None)

    def _return_to_queue(self, message: Optional[Message]) -> bool:
        """Return `message`, taken by a call whose caller is gone, to the end of the queue,
        without waiting: whether it is back (or there was none)."""
        if message is None:
            return True
        back = _send(self._h, message.type, message.data, len(message.data), IPC_NOWAIT, -1, _NULL) == 0
        outcome = "put it back at the end of the queue" if back else "could not put it back: its caller gets it"
        debug(
            "%s: an async receive whose caller is gone took a message of type %d; %s",
            self._describe(),
            message.type,
            outcome,
        )
        return back

    # ---- control: msgctl on this handle's queue, close ----

    def _is_closed(self) -> bool:
        """Whether sysvmq_close() was called: read atomically (another thread may close)."""
        return bool(lib.sysvmq_is_closed(self._h))

    def _check_open(self, what: str) -> None:
        if lib.sysvmq_is_closed(self._h):
            raise error_for(errno.EBADF, f"{what} {self._describe()}")

    def _stat(self) -> Dict[str, int]:
        """IPC_STAT of this handle's queue: its fields, as QueueStats names them."""
        self._check_open("stat")
        key = self._h.key if self._h.key_known else None
        return system.stat_queue(self._id, key, f"stat {self._describe()}")

    def _set(self, mode: int, uid: int, gid: int, max_bytes: int) -> int:
        """IPC_SET of the fields that are >= 0: 0, or -errno."""
        self._check_open("set")
        return system.set_queue(self._id, mode, uid, gid, max_bytes)

    def _remove(self) -> None:
        self._check_open("destroy")
        system.remove_queue(self._id, f"destroy {self._describe()}")

    def _close(self) -> int:
        """Mark the handle closed and wake its blocked threads: 0, or -EBUSY (csrc/api.h)."""
        r = int(lib.sysvmq_close(self._h))
        _report()
        return r
