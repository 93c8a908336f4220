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
from sysvmq.queue import Message, MessageQueue, Messages
from sysvmq.stats import Limits, QueueStats, ftok, limits, queues
from sysvmq.wakeup import set_wakeup_signal, wakeup_signal

#: The version of this package, as a string.
__version__ = "0.1.0"

# The values come from the platform's <sys/ipc.h> and <sys/msg.h> at build time.
#: The key that makes a new private queue every time (0).
IPC_PRIVATE: int = _lib.IPC_PRIVATE
#: msgget flag: create the queue if the key has none (``create=True``).
IPC_CREAT: int = _lib.IPC_CREAT
#: msgget flag, with IPC_CREAT: fail if the queue exists (``exclusive=True``).
IPC_EXCL: int = _lib.IPC_EXCL
#: msgsnd / msgrcv flag: fail instead of waiting (``block=False``).
IPC_NOWAIT: int = _lib.IPC_NOWAIT
#: msgctl command: remove the queue (what ``destroy()`` does).
IPC_RMID: int = _lib.IPC_RMID
#: msgctl command: change owner, mode or capacity (what ``set()`` does).
IPC_SET: int = _lib.IPC_SET
#: msgctl command: read the queue's state (what ``stats()`` does).
IPC_STAT: int = _lib.IPC_STAT
#: msgrcv flag: cut a message longer than the buffer (``truncate=True``).
MSG_NOERROR: int = _lib.MSG_NOERROR

__all__ = [
    "__version__",
    "MessageQueue",
    "Message",
    "Messages",
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
    #: msgctl command (Linux): the kernel's limits (what ``limits()`` reads).
    IPC_INFO: int = _lib.SYSVMQ_IPC_INFO
    __all__.append("IPC_INFO")
if _lib.SYSVMQ_HAS_MSG_INFO:
    #: msgctl command (Linux): what is in use (what ``limits()`` reads).
    MSG_INFO: int = _lib.SYSVMQ_MSG_INFO
    __all__.append("MSG_INFO")
if _lib.SYSVMQ_HAS_MSG_STAT:
    #: msgctl command (Linux): the state of the queue in a kernel slot (what ``queues()`` reads).
    MSG_STAT: int = _lib.SYSVMQ_MSG_STAT
    __all__.append("MSG_STAT")
if _lib.SYSVMQ_HAS_MSG_EXCEPT:
    #: msgrcv flag (Linux): any type but the one given (``exclude=True``).
    MSG_EXCEPT: int = _lib.SYSVMQ_MSG_EXCEPT
    __all__.append("MSG_EXCEPT")
if _lib.SYSVMQ_HAS_MSG_COPY:
    #: msgrcv flag (Linux): copy message number N, leaving it queued (what ``peek()`` does).
    MSG_COPY: int = _lib.SYSVMQ_MSG_COPY
    __all__.append("MSG_COPY")
