"""Iterating over a queue: ``for message in mq`` and ``async for message in mq``.

Each step takes one message and returns it at once: nothing is held between
steps, so a loop that breaks, raises or is abandoned leaves every message it has
not returned in the queue. The async steps are the async calls, with their
no-loss cancellation (sysvmq.aio).

This module knows nothing of MessageQueue: it drives anything with its two
receive methods.
"""

from typing import Optional, Protocol

from sysvmq._binding.handle import Message
from sysvmq.errors import QueueClosedError, QueueTimeoutError

__all__ = ["Messages"]


class _Receiver(Protocol):
    def receive_message(self, type: int, *, timeout: Optional[float], truncate: bool, exclude: bool) -> Message: ...

    async def receive_message_async(
        self, type: int, *, timeout: Optional[float], truncate: bool, exclude: bool
    ) -> Message: ...


class Messages:
    """The messages of a queue, one per step, as they come: an iterator and an async iterator.

    Made by ``iter(mq)``, ``aiter(mq)`` or :meth:`MessageQueue.messages`. Each step
    waits for the next message its `type` selects and returns it as a
    :class:`Message`. The iteration ends, without an exception, when the handle
    is closed (before or while a step waits: ``close()`` from another thread or
    task) or when `timeout` seconds pass with no message. Every other error is
    raised: :class:`QueueRemovedError` when the queue is destroyed,
    :class:`MessageTooLargeError` for a message bigger than max_size (it stays
    queued). Breaking out of the loop loses nothing. Once ended, it stays ended, as
    an iterator must: a message that arrives later waits for the next iterator.

    :param queue: the handle whose messages it yields.
    :param type: which messages, as for :meth:`MessageQueue.receive`.
    :param timeout: end when this many seconds pass with no message; ``None`` waits forever.
    :param truncate: cut messages longer than max_size to fit.
    :param exclude: with `type` > 0, the messages of any other type (Linux).
    """

    __slots__ = ("_ended", "_exclude", "_queue", "_timeout", "_truncate", "_type")

    def __init__(self, queue: _Receiver, type: int, timeout: Optional[float], truncate: bool, exclude: bool) -> None:
        self._queue = queue
        self._type = type
        self._timeout = timeout
        self._truncate = truncate
        self._exclude = exclude
        self._ended = False

    def __iter__(self) -> "Messages":
        return self

    def __next__(self) -> Message:
        if self._ended:
            raise StopIteration
        try:
            return self._queue.receive_message(
                self._type, timeout=self._timeout, truncate=self._truncate, exclude=self._exclude
            )
        except (QueueClosedError, QueueTimeoutError):
            self._ended = True
            raise StopIteration from None

    def __aiter__(self) -> "Messages":
        return self

    async def __anext__(self) -> Message:
        if self._ended:
            raise StopAsyncIteration
        try:
            return await self._queue.receive_message_async(
                self._type, timeout=self._timeout, truncate=self._truncate, exclude=self._exclude
            )
        except (QueueClosedError, QueueTimeoutError):
            self._ended = True
            raise StopAsyncIteration from None

    def __repr__(self) -> str:
        return f"<Messages of {self._queue!r} type={self._type} timeout={self._timeout}>"
