"""The exceptions of sysvmq: one class per way a queue operation fails.

Every kernel error is a :class:`SysVMQError`, an :class:`OSError` with the real
``errno`` and ``strerror``; each leaf class is also the matching built-in, so
``except FileNotFoundError`` catches :class:`QueueNotFoundError` too.
"""

import errno as _errno
import os
import queue as _queue
from typing import Any, Dict, Optional, Tuple, Type


class SysVMQError(OSError):
    """A System V message queue operation failed; ``errno`` says why.

    sysvmq raises these; a program has no need to make one.

    :param errno: the errno the kernel returned (``strerror`` follows from it).
    :param detail: what was being done, to which queue, and what to do about it.
    """

    errno: int  # always the real errno, never None as OSError allows

    def __init__(self, errno: int, detail: str) -> None:
        super().__init__(errno, os.strerror(errno))
        #: What was being done, to which queue, and what to do about it.
        self.detail = detail

    def __str__(self) -> str:
        return f"[Errno {self.errno}] {self.strerror}: {self.detail}"

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.errno, self.detail), self.__dict__)


class QueueNotFoundError(SysVMQError, FileNotFoundError):
    """No queue has this key, and the call did not ask to create one (ENOENT)."""


class QueueExistsError(SysVMQError, FileExistsError):
    """``create`` with ``exclusive`` found a queue with this key already (EEXIST)."""


class QueueRemovedError(SysVMQError):
    """The queue was removed before or during the call (EIDRM, or EINVAL for a stale id)."""


class PermissionDeniedError(SysVMQError, PermissionError):
    """The queue's mode or owner does not allow this operation (EACCES, EPERM)."""


class QueueEmptyError(SysVMQError, BlockingIOError, _queue.Empty):
    """A non-blocking receive found no message of the requested type (ENOMSG).

    Also a :class:`queue.Empty`, so code written for the stdlib's queues catches it."""


class QueueFullError(SysVMQError, BlockingIOError, _queue.Full):
    """A non-blocking send found no room in the queue (EAGAIN).

    Also a :class:`queue.Full`, so code written for the stdlib's queues catches it."""


class QueueTimeoutError(SysVMQError, TimeoutError):
    """The call's ``timeout`` expired before it could complete (ETIMEDOUT)."""


class QueueEmptyTimeoutError(QueueEmptyError, QueueTimeoutError):
    """:meth:`sysvmq.Queue.get`'s ``timeout`` expired with nothing to get (ETIMEDOUT).

    Both a :class:`queue.Empty`, as :class:`queue.Queue` raises then, and a
    :class:`QueueTimeoutError`, as every call whose timeout expires raises."""


class QueueFullTimeoutError(QueueFullError, QueueTimeoutError):
    """:meth:`sysvmq.Queue.put`'s ``timeout`` expired with no room (ETIMEDOUT).

    Both a :class:`queue.Full`, as :class:`queue.Queue` raises then, and a
    :class:`QueueTimeoutError`, as every call whose timeout expires raises."""


class MessageTooLargeError(SysVMQError):
    """A message does not fit: on receive the next message is bigger than the buffer
    (E2BIG; it stays in the queue); on send it is bigger than kernel.msgmax (EINVAL)
    or than the queue's capacity, so it could never be sent (EMSGSIZE)."""


class ResourceLimitError(SysVMQError):
    """A system-wide limit is reached: too many queues (ENOSPC) or no memory (ENOMEM)."""


class QueueClosedError(SysVMQError):
    """The handle was closed with ``close()`` (EBADF); the queue itself may still exist."""


class MessageDecodeError(ValueError):
    """A :class:`sysvmq.Queue` took a message its serializer's ``loads`` could not read.

    The message is off the queue: its payload is kept here as ``data`` (bytes),
    with its message ``type``; the serializer's own exception is ``__cause__``.

    :param data: the payload taken off the queue.
    :param type: the message's type.
    :param detail: the error message.
    """

    def __init__(self, data: bytes, type: int, detail: str) -> None:
        super().__init__(detail)
        #: The payload taken off the queue, as it arrived.
        self.data = data
        #: The message's type.
        self.type = type

    def __reduce__(self) -> Tuple[Any, ...]:
        return (self.__class__, (self.data, self.type, self.args[0]))


_BY_ERRNO: Dict[int, Type[SysVMQError]] = {
    _errno.ENOENT: QueueNotFoundError,
    _errno.EEXIST: QueueExistsError,
    _errno.EIDRM: QueueRemovedError,
    _errno.EINVAL: QueueRemovedError,
    _errno.EACCES: PermissionDeniedError,
    _errno.EPERM: PermissionDeniedError,
    _errno.ENOMSG: QueueEmptyError,
    _errno.EAGAIN: QueueFullError,
    _errno.ETIMEDOUT: QueueTimeoutError,
    _errno.E2BIG: MessageTooLargeError,
    _errno.EMSGSIZE: MessageTooLargeError,
    _errno.ENOSPC: ResourceLimitError,
    _errno.ENOMEM: ResourceLimitError,
    _errno.EBADF: QueueClosedError,
}

_HINTS: Dict[int, str] = {
    _errno.ENOENT: "pass create=True to make it",
    _errno.EEXIST: "drop exclusive=True to open the existing queue",
    _errno.EIDRM: "the queue was removed (IPC_RMID); its id may name another queue now",
    _errno.EINVAL: "no queue has this id any more; it was removed",
    _errno.EACCES: "the queue's mode does not allow this user; see stats().mode",
    _errno.EPERM: "only the queue's owner, creator or root may do this",
    _errno.ENOSPC: "too many queues exist; remove unused ones (ipcs -q) or raise sysctl kernel.msgmni",
    _errno.ENOMEM: "the kernel is out of memory for message queues",
    _errno.EBADF: "this handle was closed",
}


def error_for(errno: int, what: str, hint: Optional[str] = None) -> SysVMQError:
    """The exception for `errno` from the operation described by `what`.

    `hint` replaces the standard advice for that errno; an empty string drops it.
    """
    cls = _BY_ERRNO.get(errno, SysVMQError)
    advice = _HINTS.get(errno, "") if hint is None else hint
    return cls(errno, f"{what}: {advice}" if advice else what)


#: Every exception class above (sysvmq's __all__ lists them too).
__all__ = [name for name, value in list(globals().items()) if isinstance(value, type) and issubclass(value, Exception)]
