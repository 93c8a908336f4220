"""The async methods of MessageQueue (asyncio, trio, anyio), on top of its C state and
control methods; sysvmq.aio runs the waits in worker threads."""

import errno
from typing import TYPE_CHECKING, Optional, Union

from sysvmq import aio
from sysvmq._args import (
    as_bytes,
    check_receive_type,
    check_send_type,
    deadline_ns,
    exact_type,
    receive_options,
    send_options,
    wait_seconds,
)
from sysvmq._control import QueueControl
from sysvmq._lowlevel import Message, Options, new_message, undelivered
from sysvmq._sysvmq_cffi import lib
from sysvmq.aioline import receive_in_line
from sysvmq.errors import QueueEmptyError, QueueFullError

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["AsyncMethods"]


class AsyncMethods(QueueControl):
    """send_async, receive_async and receive_message_async: see MessageQueue."""

    __slots__ = ()

    # ---- async: asyncio, trio, anyio ----

    async def send_async(
        self, message: Union["Buffer", str], type: int = 1, *, timeout: Optional[float] = None
    ) -> None:
        """:meth:`send` for asyncio or trio: waits for room without blocking the event loop.

        A call that has to wait sends from a worker thread. Cancelled while it
        waits, it sends nothing; one that got room just before the cancellation
        reached it has sent its message and raises CancelledError all the same. A
        ``timeout`` that expires (:class:`QueueTimeoutError`) always means not sent.
        """
        # A copy, not a view of the caller's buffer: a worker thread that no signal can wake
        # may outlive this call, and a view would stay exported (see sysvmq._args.exported).
        data = message if exact_type(message) is bytes else as_bytes(message)
        mtype = check_send_type(type)
        options = Options(*send_options(0, True, timeout), timeout)
        if aio.running_asyncio_loop() is None:  # under trio: a checkpoint before touching the queue
            await aio.checkpoint()
        try:
            self._send_loop(data, mtype, Options(lib.IPC_NOWAIT, -1, None))
            return
        except QueueFullError:
            pass
        try:
            await aio.in_thread(lambda token: self._send_loop(data, mtype, options, token))
        except aio.NoThreadAtExit:
            self._send_loop(data, mtype, options)

    async def receive_async(
        self, type: int = 0, *, timeout: Optional[float] = None, truncate: bool = False, exclude: bool = False
    ) -> bytes:
        """:meth:`receive` for asyncio or trio. Cancelling it never loses a message (see sysvmq.aio)."""
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
        """
        mtype = check_receive_type(type)
        flags, _ = receive_options(mtype, 0, True, timeout, truncate, exclude)  # checks timeout too
        if aio.running_asyncio_loop() is None:  # under trio: a checkpoint before touching the queue
            await aio.checkpoint()
        try:
            return await receive_in_line(
                (self._h, mtype, flags),
                lambda: self._take_now(mtype, flags),
                lambda token, seconds: self._await_message(mtype, flags, seconds, token),
                self._return_to_queue,
                wait_seconds(timeout),
                lambda: self._receive_error(errno.ETIMEDOUT, timeout),
            )
        except aio.NoThreadAtExit:
            _, got, data = self._receive_one(mtype, Options(flags, deadline_ns(timeout), timeout))
            return new_message((got, data))

    def _take_now(self, mtype: int, flags: int) -> Message:
        """The message `mtype` selects, if one is waiting (else QueueEmptyError), taken with
        IPC_NOWAIT in the event loop's thread by the coroutine that returns it."""
        taken = None
        try:
            taken = self._receive_one(mtype, Options(flags | lib.IPC_NOWAIT, -1, None))
            return new_message(taken[1:])
        except QueueEmptyError:
            raise
        except BaseException as error:
            # A handler raised between the take and the return (see MessageQueue.receive):
            # the message goes back to the queue, by the first call made here.
            if taken is not None and lib.sysvmq_return_copy(self._h, taken[1], taken[2], taken[0]) < 0:
                undelivered(error, [new_message(taken[1:])])
            raise
