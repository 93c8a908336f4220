"""``MessageQueue``: a handle on one System V message queue.

One class, its methods grouped by concern: opening, attributes, sending, receiving,
batches and zero-copy, iteration, async (asyncio, trio, anyio), control. The public
methods check their arguments (sysvmq._args) and hand the work to the handle's
operations (sysvmq._binding.handle), except the single-message paths (`send`,
`receive`, `receive_message`), which are kept to the bone here: one cffi call when
nothing goes wrong (the binding layer's docstring names them).
"""

import errno
import sys
from typing import TYPE_CHECKING, Any, Iterable, List, Optional, Tuple, TypeVar, Union

from sysvmq import aio, wakeup
from sysvmq._args import (
    SSIZE_LIMIT,
    UINT32_MAX,
    WAIT_FOREVER,
    Options,
    as_bytes,
    bad_type,
    check_key,
    check_max_size,
    check_receive_type,
    check_send_type,
    deadline_ns,
    exact_type,
    open_flags,
    receive_options,
    send_options,
    wait_seconds,
)
from sysvmq._binding import system
from sysvmq._binding.c import IPC_NOWAIT, LONG_MAX, LONG_MIN, exported, writable
from sysvmq._binding.handle import (
    HELD,
    MTYPE,
    NULL,
    Handle,
    Message,
    new_message,
    put,
    return_copy,
    return_held,
    take,
    take_type,
    take_within,
)
from sysvmq._binding.system import monotonic_ns
from sysvmq._integers import INT_MAX, INT_MIN, check_int
from sysvmq.aioline import receive_in_line
from sysvmq.errors import QueueFullError, QueueTimeoutError, SysVMQError, error_for
from sysvmq.iteration import Messages
from sysvmq.stats import QueueStats, limits

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["ClosesOnExit", "Message", "MessageQueue", "Messages", "Payload"]

#: What send() accepts: any object with the buffer protocol, or str (sent as UTF-8).
Payload = Union["Buffer", str]

_T = TypeVar("_T")
#: macOS hands out negative msqids after some 32k queues were made; Linux never does.
ID_MIN = INT_MIN if sys.platform == "darwin" else 0

# Hot-path names bound once: each global or attribute lookup is paid per message.
_put = put
_take = take
_take_type = take_type
_take_within = take_within
_return_held = return_held
_return_copy = return_copy
_NULL = NULL
#: No flags: the one value the fast paths take as is. Compared by identity, which also sends a
#: falsy value that is no int (0.0, None, '', False) to the checks of the checked path; every
#: int 0 is this object (CPython's small integers; PyPy compares ints by value).
_NO_FLAGS = 0


class ClosesOnExit:
    """``with obj:`` closes it at the end; if the body raised, a close error never hides
    that exception. For anything with a ``close()``: MessageQueue, sysvmq.Queue."""

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

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


class MessageQueue(ClosesOnExit, Handle):
    """A handle on a System V message queue.

    ``MessageQueue(key)`` opens the queue with that key; ``create=True`` makes it if
    needed (``exclusive=True``: only if new), with permission bits ``mode``
    (default 0o600); raw ``msgget`` flags such as ``IPC_CREAT | 0o666`` work too.
    ``max_size`` is the largest message this handle receives (default: the
    kernel's msgmax). One handle may be shared by any number of threads. As a
    context manager (``with MessageQueue(...) as mq:``) it closes the handle at the
    end, never the queue.

    :param key: the queue's key, any ``key_t`` (-2**31 to 2**32-1: 0xDEADC0DE is the
        queue C opens as ``(key_t)0xDEADC0DE``); :data:`IPC_PRIVATE` makes a new
        private queue; :func:`ftok` derives one from a file.
    :param max_size: the largest message, in bytes, this handle receives; ``None``
        for the kernel's msgmax. It does not limit what the handle sends.
    :param flags: raw ``msgget`` flags and permission bits, as in C
        (``IPC_CREAT | IPC_EXCL | 0o640``).
    :param create: make the queue if the key has none (``IPC_CREAT``).
    :param exclusive: with `create`, insist on a new queue (``IPC_EXCL``):
        :class:`QueueExistsError` if the key has one.
    :param mode: the permission bits of a new queue (default 0o600). With `create`,
        an existing queue more open than `mode`, or another user's when `mode`
        shares with no one, is refused (:class:`PermissionDeniedError`); leave it
        out to accept an existing queue as it is.
    """

    __slots__ = ()

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
        signed_key = check_key(key)
        flags, mode = open_flags(signed_key, flags, create, exclusive, mode)
        size = check_max_size(max_size)
        wakeup.configure_from_environment()
        self._setup(signed_key, True, system.open_queue(signed_key, flags, mode), size)

    @classmethod
    def from_id(cls, id: int, max_size: Optional[int] = None) -> "MessageQueue":
        """Attach to an existing queue by its msqid (the id ``ipcs -q`` prints).

        :param id: the queue's msqid.
        :param max_size: the largest message, in bytes, this handle receives; ``None``
            for the kernel's msgmax.
        """
        msqid = check_int("id", id, ID_MIN, INT_MAX)
        size = check_max_size(max_size)
        wakeup.configure_from_environment()
        signed_key, known = system.key_of(msqid)
        mq = cls.__new__(cls)
        mq._setup(signed_key, known, msqid, size)
        return mq

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
        return self._is_closed()

    def __repr__(self) -> str:
        state = " closed" if self._is_closed() else ""
        return f"<MessageQueue key={self._key:#010x} id={self._id} max_size={self._max_size}{state}>"

    def __reduce__(self) -> Tuple[Any, ...]:
        return (MessageQueue.from_id, (self._id, self._max_size))

    # ---- sending ----

    def send(
        self, message: Payload, type: int = 1, flags: int = 0, *, block: bool = True, timeout: Optional[float] = None
    ) -> None:
        """Send `message` (bytes-like, or str as UTF-8) with message type `type` (>= 1).

        Blocks while the queue is full, unless ``block=False`` (then
        :class:`QueueFullError`) or until `timeout` seconds pass
        (:class:`QueueTimeoutError`).

        :param message: the payload: any bytes-like object (its whole buffer is
            sent, NUL bytes and all), or a str, sent as UTF-8.
        :param type: the message type, 1 to LONG_MAX.
        :param flags: raw ``msgsnd`` flags (:data:`IPC_NOWAIT`), as in C.
        :param block: ``False`` raises :class:`QueueFullError` at once instead of
            waiting for room (``IPC_NOWAIT``).
        :param timeout: the most seconds to wait for room, any real number: 0 tries
            once, ``None`` waits forever; then :class:`QueueTimeoutError`.
        """
        if exact_type(message) is not bytes:
            with exported(message) as data:  # released before a traceback can keep this frame
                self._send_checked(data, type, flags, block, timeout)
            return
        if flags is not _NO_FLAGS or not block or timeout is not None or exact_type(type) is not int:
            self._send_checked(message, type, flags, block, timeout)
            return
        try:
            r = _put(self._h, type, message, len(message))
        except OverflowError:
            raise bad_type(type, check_send_type) from None
        if r:
            self._send_loop(message, type, WAIT_FOREVER, _NULL, r)

    def _send_checked(self, data: Any, type: Any, flags: Any, block: bool, timeout: Any) -> None:
        """send() of `data` (exact bytes or a cdata view) with every other argument checked."""
        mtype = check_send_type(type)
        self._send_loop(data, mtype, Options(*send_options(flags, block, timeout), timeout))

    def send_many(
        self, messages: Iterable[Payload], type: int = 1, *, block: bool = True, timeout: Optional[float] = None
    ) -> int:
        """Send every message of `messages` with type `type`, in one call into C.

        Returns how many were sent (all of them). The first failure stops the batch
        and is raised with ``.sent``: how many went before it. `timeout` bounds the
        whole batch.

        :param messages: the payloads, each as :meth:`send` takes it.
        :param type: the message type of every one, 1 to LONG_MAX.
        :param block: ``False`` raises :class:`QueueFullError` at the first message
            that finds no room, instead of waiting.
        :param timeout: the most seconds the whole batch waits for room, any real
            number; ``None`` waits forever.
        """
        mtype = type if exact_type(type) is int and 0 < type <= LONG_MAX else check_send_type(type)
        options = WAIT_FOREVER if block and timeout is None else Options(*send_options(0, block, timeout), timeout)
        parts: List[Any] = list(messages)  # our own copy: nobody changes it between len() and join
        if not parts:
            return 0
        if list(map(exact_type, parts)).count(bytes) != len(parts):
            parts = [m if exact_type(m) is bytes else as_bytes(m) for m in parts]
        return self._send_batch(parts, mtype, options)

    # ---- receiving ----

    def _receive_checked(
        self, type: Any, flags: Any, block: bool, timeout: Any, truncate: bool, exclude: bool
    ) -> Tuple[int, int, bytes]:
        """receive() with every argument checked: (length, type, payload)."""
        mtype = check_receive_type(type)
        options = Options(*receive_options(mtype, flags, block, timeout, truncate, exclude), timeout)
        return self._receive_one(mtype, options)

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

        :param type: which message: 0 the first; > 0 the first of exactly that type;
            < 0 the first of the lowest type <= abs(type).
        :param flags: raw ``msgrcv`` flags (:data:`IPC_NOWAIT`, :data:`MSG_NOERROR`,
            ``MSG_EXCEPT``), as in C.
        :param block: ``False`` raises :class:`QueueEmptyError` at once instead of
            waiting for a message (``IPC_NOWAIT``).
        :param timeout: the most seconds to wait, any real number: 0 tries once,
            ``None`` waits forever; then :class:`QueueTimeoutError`.
        :param truncate: cut a message longer than max_size to fit (``MSG_NOERROR``)
            instead of raising :class:`MessageTooLargeError`.
        :param exclude: with `type` > 0, take the first message of any other type
            (``MSG_EXCEPT``, Linux).
        """
        if (
            flags is not _NO_FLAGS
            or not block
            or truncate
            or exclude
            or exact_type(type) is not int
            or (timeout is not None and exact_type(timeout) is not float and exact_type(timeout) is not int)
        ):
            return self._receive_checked(type, flags, block, timeout, truncate, exclude)[2]
        # The common case, kept to the bone (receive_message mirrors it). The buffer is
        # this call's alone until it is back on the free list. Its `held` (-1 on the free
        # list, set by C, reset once the payload is copied out) says whether it holds a
        # message this call took: if anything raises before the payload is handed over
        # (Ctrl-C, sys.exit() in a handler, MemoryError, a tracer), the message is returned
        # to the queue (the return rule: sysvmq._binding.handle).
        buffers = self._buffers
        try:
            buffer = buffers.pop()
        except IndexError:
            buffer = self._buffer()
        rb, view, fields = buffer
        # `mtype`: the message's type once it is copied out (a type is > 0); `n`: its length
        # once taken.
        mtype, n = 0, -1
        data: bytes
        try:
            if timeout is not None:
                n = _take_within(rb, type, timeout)
            else:
                n = _take(rb) if type == 0 else _take_type(rb, type)
            if n < 0:
                n = self._resume_fast_receive(n, type, timeout, buffer)
            # Handed over: the buffer holds nothing for an exiting process to wait for. The
            # copy, then the reset, then `mtype`, last: CPython 3.9 and PyPy may run a signal
            # handler between any two of these stores, and the except block tells by `mtype`
            # whether the buffer may be another call's already.
            fields[HELD], data, mtype = -1, view[:n], fields[MTYPE]
            buffers.append(buffer)
            return data
        except BaseException as error:
            if not mtype and n >= 0 and fields[HELD] < 0:  # stopped before `mtype`: the buffer is still this call's
                data, mtype = view[:n], fields[MTYPE]
            # The return rule (sysvmq._binding.handle): the message goes back before any Python
            # call, where another pending signal's handler could raise first.
            back = _return_copy(self._h, mtype, data, n) if mtype else _return_held(rb)
            if self._returned_fast(error, buffer, back, (mtype, data) if mtype else None):
                return self._receive_checked(type, 0, True, timeout, False, False)[2]
            raise

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
        """Like :meth:`receive`, but a :class:`Message` with the type as well.

        :param type: which message: 0 the first; > 0 the first of exactly that type;
            < 0 the first of the lowest type <= abs(type).
        :param flags: raw ``msgrcv`` flags (:data:`IPC_NOWAIT`, :data:`MSG_NOERROR`,
            ``MSG_EXCEPT``), as in C.
        :param block: ``False`` raises :class:`QueueEmptyError` at once instead of
            waiting for a message (``IPC_NOWAIT``).
        :param timeout: the most seconds to wait, any real number: 0 tries once,
            ``None`` waits forever; then :class:`QueueTimeoutError`.
        :param truncate: cut a message longer than max_size to fit (``MSG_NOERROR``)
            instead of raising :class:`MessageTooLargeError`.
        :param exclude: with `type` > 0, take the first message of any other type
            (``MSG_EXCEPT``, Linux).
        """
        if (
            flags is not _NO_FLAGS
            or not block
            or truncate
            or exclude
            or exact_type(type) is not int
            or (timeout is not None and exact_type(timeout) is not float and exact_type(timeout) is not int)
        ):
            _, mtype, data = self._receive_checked(type, flags, block, timeout, truncate, exclude)
            return new_message((mtype, data))
        buffers = self._buffers
        try:
            buffer = buffers.pop()
        except IndexError:
            buffer = self._buffer()
        rb, view, fields = buffer
        message, n = None, -1
        try:
            if timeout is not None:
                n = _take_within(rb, type, timeout)
            else:
                n = _take(rb) if type == 0 else _take_type(rb, type)
            if n < 0:
                n = self._resume_fast_receive(n, type, timeout, buffer)
            fields[HELD], message = -1, new_message((fields[MTYPE], view[:n]))  # as in receive()
            buffers.append(buffer)
            return message
        except BaseException as error:  # as in receive()
            copied: Optional[Tuple[int, bytes]] = message
            if copied is None and n >= 0 and fields[HELD] < 0:
                copied = (fields[MTYPE], view[:n])
            back = _return_copy(self._h, copied[0], copied[1], n) if copied is not None else _return_held(rb)
            if self._returned_fast(error, buffer, back, copied):
                _, mtype, data = self._receive_checked(type, 0, True, timeout, False, False)
                return new_message((mtype, data))
            raise

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

        :param buffer: where the payload goes: any writable, contiguous buffer; a
            read-only one is refused before the system call.
        :param type: which message: 0 the first; > 0 the first of exactly that type;
            < 0 the first of the lowest type <= abs(type).
        :param flags: raw ``msgrcv`` flags (:data:`IPC_NOWAIT`, :data:`MSG_NOERROR`,
            ``MSG_EXCEPT``), as in C.
        :param block: ``False`` raises :class:`QueueEmptyError` at once instead of
            waiting for a message (``IPC_NOWAIT``).
        :param timeout: the most seconds to wait, any real number: 0 tries once,
            ``None`` waits forever; then :class:`QueueTimeoutError`.
        :param truncate: cut a message longer than max_size to fit (``MSG_NOERROR``)
            instead of raising :class:`MessageTooLargeError`.
        :param exclude: with `type` > 0, take the first message of any other type
            (``MSG_EXCEPT``, Linux).
        """
        with writable(buffer) as dest:  # released before a traceback can keep this frame
            mtype = check_receive_type(type)
            options = Options(*receive_options(mtype, flags, block, timeout, truncate, exclude), timeout)
            n, got, _ = self._receive_one(mtype, options, dest)
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

        :param max_count: the most messages to take, an int >= 1.
        :param type: which messages, as for :meth:`receive`.
        :param block: ``False`` raises :class:`QueueEmptyError` at once when nothing
            waits, instead of waiting for the first message.
        :param timeout: the most seconds to wait for the first message, any real
            number: 0 tries once, ``None`` waits forever; then :class:`QueueTimeoutError`.
        :param truncate: cut messages longer than max_size to fit, as :meth:`receive` does.
        :param exclude: with `type` > 0, take messages of any other type (Linux).
        """
        if exact_type(max_count) is not int or not 0 < max_count < SSIZE_LIMIT:
            max_count = check_int("max_count", max_count, 1, SSIZE_LIMIT - 1, -SSIZE_LIMIT, SSIZE_LIMIT - 1)
        mtype = type if exact_type(type) is int and LONG_MIN <= type <= LONG_MAX else check_receive_type(type)
        if block and timeout is None and not truncate and not exclude:
            return self._receive_batch(max_count, mtype, WAIT_FOREVER)
        options = Options(*receive_options(mtype, 0, block, timeout, truncate, exclude), timeout)
        return self._receive_batch(max_count, mtype, options)

    def peek(self, index: int = 0) -> Message:
        """A copy of the message at position `index` (0 = first), left in the queue.

        Linux MSG_COPY: needs a kernel built with CONFIG_CHECKPOINT_RESTORE.

        :param index: the message's position in the queue, 0 for the first.
        """
        return self._peek(check_int("index", index, 0, LONG_MAX, LONG_MIN, LONG_MAX))

    # ---- iteration ----

    def messages(
        self, type: int = 0, *, timeout: Optional[float] = None, truncate: bool = False, exclude: bool = False
    ) -> Messages:
        """Iterate (``for`` or ``async for``) over the messages `type` selects, as they come.

        Each step is :meth:`receive_message` (or :meth:`receive_message_async`) with
        these arguments; the loop ends when the handle is closed or when `timeout`
        seconds pass with no message. ``for message in mq`` is ``mq.messages()``.

        :param type: which messages, as for :meth:`receive`.
        :param timeout: end the loop when this many seconds pass with no message
            (0 drains what is waiting); ``None`` waits forever.
        :param truncate: cut messages longer than max_size to fit, as :meth:`receive` does.
        :param exclude: with `type` > 0, the messages of any other type (Linux).
        """
        mtype = check_receive_type(type)
        receive_options(mtype, 0, True, timeout, truncate, exclude)  # bad arguments fail here, not at a step
        return Messages(self, mtype, timeout, truncate, exclude)

    def __iter__(self) -> Messages:
        """``for message in mq``: every message, blocking; ends when the handle is closed."""
        return Messages(self, 0, None, False, False)

    def __aiter__(self) -> Messages:
        """``async for message in mq``: the same, on asyncio or trio, with no-loss cancellation."""
        return Messages(self, 0, None, False, False)

    # ---- async: asyncio, trio, anyio ----

    async def send_async(
        self, message: Union["Buffer", str], type: int = 1, *, timeout: Optional[float] = None
    ) -> None:
        """:meth:`send` for asyncio or trio: waits for room without blocking the event loop.

        A call that has to wait sends from a worker thread. Cancelled while it
        waits, it sends nothing; one that got room just before the cancellation
        reached it has sent its message and raises CancelledError all the same. A
        ``timeout`` that expires (:class:`QueueTimeoutError`) always means not sent.

        :param message: the payload, as :meth:`send` takes it.
        :param type: the message type, 1 to LONG_MAX.
        :param timeout: the most seconds to wait for room, any real number: 0 tries
            once, ``None`` waits forever; then :class:`QueueTimeoutError`.
        """
        # A copy, not a view of the caller's buffer: a worker thread that no signal can wake
        # may outlive this call, and a view would stay exported (sysvmq._binding.c).
        data = message if exact_type(message) is bytes else as_bytes(message)
        mtype = check_send_type(type)
        options = Options(*send_options(0, True, timeout), timeout)
        if aio.running_asyncio_loop() is None:  # under trio: a checkpoint before touching the queue
            await aio.checkpoint()
        try:
            self._send_loop(data, mtype, Options(IPC_NOWAIT, -1, None))
            return
        except QueueFullError:
            pass
        try:
            await aio.in_thread(lambda token, seconds: self._send_for(data, mtype, options, token, seconds))
        except aio.NoThreadAtExit:
            self._send_loop(data, mtype, options)

    def _send_for(self, data: bytes, mtype: int, options: Options, token: Any, seconds: float) -> None:
        """send_async's wait in its worker: at most `seconds`, then aio.StillWaiting, unless
        the deadline of `options` comes first (then the caller's QueueTimeoutError)."""
        flags, deadline, _ = options
        until = monotonic_ns() + int(seconds * 1e9)
        if 0 <= deadline <= until:
            self._send_loop(data, mtype, options, token)
            return
        try:
            self._send_loop(data, mtype, Options(flags, until, seconds), token)
        except QueueTimeoutError:
            raise aio.StillWaiting from None

    async def receive_async(
        self, type: int = 0, *, timeout: Optional[float] = None, truncate: bool = False, exclude: bool = False
    ) -> bytes:
        """:meth:`receive` for asyncio or trio. Cancelling it never loses a message (see sysvmq.aio).

        :param type: which message, as for :meth:`receive`.
        :param timeout: the most seconds to wait, any real number: 0 tries once,
            ``None`` waits forever; then :class:`QueueTimeoutError`.
        :param truncate: cut a message longer than max_size to fit, as :meth:`receive` does.
        :param exclude: with `type` > 0, take the first message of any other type (Linux).
        """
        return (await self.receive_message_async(type, timeout=timeout, truncate=truncate, exclude=exclude)).data

    async def receive_message_async(
        self, type: int = 0, *, timeout: Optional[float] = None, truncate: bool = False, exclude: bool = False
    ) -> Message:
        """:meth:`receive_message` for asyncio or trio. Cancelling it never loses a message.

        A worker thread only waits until a matching message is there, taking none;
        the message is taken here, in the event loop's thread, by the coroutine
        that returns it. The receives of one event loop that select the same
        messages wait in line behind one such thread and are served in order
        (sysvmq.aioline); each keeps its own `timeout`.

        :param type: which message, as for :meth:`receive`.
        :param timeout: the most seconds to wait, any real number: 0 tries once,
            ``None`` waits forever; then :class:`QueueTimeoutError`.
        :param truncate: cut a message longer than max_size to fit, as :meth:`receive` does.
        :param exclude: with `type` > 0, take the first message of any other type (Linux).
        """
        mtype = check_receive_type(type)
        flags, _ = receive_options(mtype, 0, True, timeout, truncate, exclude)  # checks timeout too
        if aio.running_asyncio_loop() is None:  # under trio: a checkpoint before touching the queue
            await aio.checkpoint()
        try:
            return await receive_in_line(
                (self._h, mtype, flags),
                lambda: self._take_waiting(mtype, flags),
                lambda token, seconds: self._await_message(mtype, flags, seconds, token),
                self._return_to_queue,
                wait_seconds(timeout),
                lambda: self._receive_error(errno.ETIMEDOUT, timeout),
            )
        except aio.NoThreadAtExit:
            _, got, data = self._receive_one(mtype, Options(flags, deadline_ns(timeout), timeout))
            return new_message((got, data))

    # ---- control: the queue's state, its removal, this handle's end ----

    def stats(self) -> QueueStats:
        """One IPC_STAT snapshot: counts, capacity, owner, mode, pids and times."""
        return QueueStats(**self._stat())

    def set(
        self,
        *,
        mode: Optional[int] = None,
        uid: Optional[int] = None,
        gid: Optional[int] = None,
        max_bytes: Optional[int] = None,
    ) -> None:
        """Change the queue's permission bits, owner or capacity (IPC_SET).

        Only the queue's owner, its creator or a privileged process may.

        :param mode: the new permission bits (0 to 0o777); ``None`` keeps them.
        :param uid: the new owner's user id; ``None`` keeps it.
        :param gid: the new owner's group id; ``None`` keeps it.
        :param max_bytes: the new capacity in payload bytes (msg_qbytes); above
            kernel.msgmnb it needs CAP_SYS_RESOURCE. ``None`` keeps it.
        """
        r = self._set(
            -1 if mode is None else check_int("mode", mode, 0, 0o777),
            -1 if uid is None else check_int("uid", uid, 0, UINT32_MAX - 1, INT_MIN, UINT32_MAX),
            -1 if gid is None else check_int("gid", gid, 0, UINT32_MAX - 1, INT_MIN, UINT32_MAX),
            # The kernel keeps the capacity in an int: 2**32 would wrap to 0.
            -1 if max_bytes is None else check_int("max_bytes", max_bytes, 1, INT_MAX),
        )
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
        self._remove()

    def close(self) -> None:
        """Close this handle only: wake every thread of this process blocked on it.

        Those calls, and every later one, raise :class:`QueueClosedError`. The
        queue and its messages stay. Closing twice is harmless.
        """
        r = self._close()
        if r < 0:
            raise error_for(
                -r,
                f"close {self._describe()}",
                "the handle is closed, but threads still blocked on it cannot be woken: the "
                "application took (handles or ignores) the signal they wait with, and no other free "
                "signal can reach them; they return when a message arrives (see sysvmq.set_wakeup_signal)",
            )
