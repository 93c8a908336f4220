"""sysvmq: System V message queues for Python.

A queue lives in the kernel and is shared by every process on the host that
knows its key: no broker, and it survives restarts of either side.

    >>> import sysvmq
    >>> with sysvmq.MessageQueue(sysvmq.IPC_PRIVATE) as mq:
    ...     mq.send(b"hello", type=1)
    ...     mq.receive()
    ...     mq.destroy()
    b'hello'
"""

from sysvmq._sysvmq_cffi import lib as _lib
from sysvmq.errors import (
    MessageDecodeError,
    MessageTooLargeError,
    PermissionDeniedError,
    QueueClosedError,
    QueueEmptyError,
    QueueExistsError,
    QueueFullError,
    QueueNotFoundError,
    QueueRemovedError,
    QueueTimeoutError,
    ResourceLimitError,
    SysVMQError,
)
from sysvmq.objqueue import Queue, Serializer
from sysvmq.queue import Message, MessageQueue
from sysvmq.stats import Limits, QueueStats, ftok, limits, queues
from sysvmq.wakeup import set_wakeup_signal, wakeup_signal

__version__ = "0.1.0"

IPC_PRIVATE: int = _lib.IPC_PRIVATE
IPC_CREAT: int = _lib.IPC_CREAT
IPC_EXCL: int = _lib.IPC_EXCL
IPC_NOWAIT: int = _lib.IPC_NOWAIT
IPC_RMID: int = _lib.IPC_RMID
IPC_SET: int = _lib.IPC_SET
IPC_STAT: int = _lib.IPC_STAT
MSG_NOERROR: int = _lib.MSG_NOERROR

__all__ = [
    "__version__",
    "MessageQueue",
    "Message",
    "Queue",
    "Serializer",
    "QueueStats",
    "Limits",
    "ftok",
    "limits",
    "queues",
    "wakeup_signal",
    "set_wakeup_signal",
    "SysVMQError",
    "QueueNotFoundError",
    "QueueExistsError",
    "QueueRemovedError",
    "PermissionDeniedError",
    "QueueEmptyError",
    "QueueFullError",
    "QueueTimeoutError",
    "MessageTooLargeError",
    "ResourceLimitError",
    "QueueClosedError",
    "MessageDecodeError",
    "IPC_PRIVATE",
    "IPC_CREAT",
    "IPC_EXCL",
    "IPC_NOWAIT",
    "IPC_RMID",
    "IPC_SET",
    "IPC_STAT",
    "MSG_NOERROR",
]

# Linux-only constants exist only where the platform headers define them.
if _lib.SYSVMQ_HAS_IPC_INFO:
    IPC_INFO: int = _lib.SYSVMQ_IPC_INFO
    __all__.append("IPC_INFO")
if _lib.SYSVMQ_HAS_MSG_INFO:
    MSG_INFO: int = _lib.SYSVMQ_MSG_INFO
    __all__.append("MSG_INFO")
if _lib.SYSVMQ_HAS_MSG_STAT:
    MSG_STAT: int = _lib.SYSVMQ_MSG_STAT
    __all__.append("MSG_STAT")
if _lib.SYSVMQ_HAS_MSG_EXCEPT:
    MSG_EXCEPT: int = _lib.SYSVMQ_MSG_EXCEPT
    __all__.append("MSG_EXCEPT")
if _lib.SYSVMQ_HAS_MSG_COPY:
    MSG_COPY: int = _lib.SYSVMQ_MSG_COPY
    __all__.append("MSG_COPY")
