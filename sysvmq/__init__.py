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

# The values come from the platform's <sys/ipc.h> and <sys/msg.h> at build time
# (sysvmq._binding.c, where each is described).
from sysvmq._binding import c as _c
from sysvmq._binding.c import (
    IPC_CREAT,
    IPC_EXCL,
    IPC_NOWAIT,
    IPC_PRIVATE,
    IPC_RMID,
    IPC_SET,
    IPC_STAT,
    MSG_NOERROR,
)
from sysvmq.errors import (
    MessageDecodeError,
    MessageTooLargeError,
    PermissionDeniedError,
    QueueClosedError,
    QueueEmptyError,
    QueueEmptyTimeoutError,
    QueueExistsError,
    QueueFullError,
    QueueFullTimeoutError,
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
    "QueueEmptyTimeoutError",
    "QueueFullTimeoutError",
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
if _c.IPC_INFO is not None:
    #: msgctl command (Linux): the kernel's limits (what ``limits()`` reads).
    IPC_INFO: int = _c.IPC_INFO
    __all__.append("IPC_INFO")
if _c.MSG_INFO is not None:
    #: msgctl command (Linux): what is in use (what ``limits()`` reads).
    MSG_INFO: int = _c.MSG_INFO
    __all__.append("MSG_INFO")
if _c.MSG_STAT is not None:
    #: msgctl command (Linux): the state of the queue in a kernel slot (what ``queues()`` reads).
    MSG_STAT: int = _c.MSG_STAT
    __all__.append("MSG_STAT")
if _c.MSG_EXCEPT:
    #: msgrcv flag (Linux): any type but the one given (``exclude=True``).
    MSG_EXCEPT: int = _c.MSG_EXCEPT
    __all__.append("MSG_EXCEPT")
if _c.MSG_COPY:
    #: msgrcv flag (Linux): copy message number N, leaving it queued (what ``peek()`` does).
    MSG_COPY: int = _c.MSG_COPY
    __all__.append("MSG_COPY")
