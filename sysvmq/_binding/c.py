"""The compiled module, its constants as Python ints, and views of callers' buffers.

Every C type the package uses is realized here, once, at import. PyPy's cffi realizes a
type at its first use into a cache that has no lock: threads whose first uses of
different types meet may be handed each other's type (a ``sysvmq_token *`` for a
``sysvmq_handle *``) and keep it. At import, the import lock keeps every other thread
out of the package; every function of ``lib`` is looked up here for the same reason.
"""

from contextlib import contextmanager
from typing import Any, Iterator

from sysvmq._integers import type_name
from sysvmq._sysvmq_cffi import ffi, lib

__all__ = ["CDECLS", "exported", "ffi", "lib", "payload", "writable"]

#: Every C type the package allocates, casts or views, spelt as its modules spell them
#: (tests/test_first_calls.py keeps the list complete).
CDECLS = (
    "char[]",
    "int *",
    "key_t *",
    "long *",
    "long[]",
    "size_t *",
    "size_t[]",
    "struct msqid_ds *",
    "struct sysvmq_msgbuf *",
    "sysvmq_batch *",
    "sysvmq_event[]",
    "sysvmq_handle *",
    "sysvmq_msginfo *",
    "sysvmq_rbuf *",
    "sysvmq_rbuf *[]",
    "sysvmq_batch *[]",
    "sysvmq_token *",
)


def _realize_every_type() -> None:
    for cdecl in CDECLS:
        ffi.new(cdecl, 1 if cdecl.endswith("[]") else None)
    for name in dir(lib):
        getattr(lib, name)


_realize_every_type()

# ---- constants: the platform's values, read from its headers at build time ----

#: The key that makes a new private queue every time (0).
IPC_PRIVATE: int = lib.IPC_PRIVATE
#: msgget flag: create the queue if the key has none (``create=True``).
IPC_CREAT: int = lib.IPC_CREAT
#: msgget flag, with IPC_CREAT: fail if the queue exists (``exclusive=True``).
IPC_EXCL: int = lib.IPC_EXCL
#: msgsnd / msgrcv flag: fail instead of waiting (``block=False``).
IPC_NOWAIT: int = lib.IPC_NOWAIT
#: msgctl command: remove the queue (what ``destroy()`` does).
IPC_RMID: int = lib.IPC_RMID
#: msgctl command: change owner, mode or capacity (what ``set()`` does).
IPC_SET: int = lib.IPC_SET
#: msgctl command: read the queue's state (what ``stats()`` does).
IPC_STAT: int = lib.IPC_STAT
#: msgrcv flag: cut a message longer than the buffer (``truncate=True``).
MSG_NOERROR: int = lib.MSG_NOERROR
#: The Linux-only ones: None where the platform's headers lack them.
IPC_INFO = int(lib.SYSVMQ_IPC_INFO) if lib.SYSVMQ_HAS_IPC_INFO else None
MSG_INFO = int(lib.SYSVMQ_MSG_INFO) if lib.SYSVMQ_HAS_MSG_INFO else None
MSG_STAT = int(lib.SYSVMQ_MSG_STAT) if lib.SYSVMQ_HAS_MSG_STAT else None
#: Flags that select nothing where the platform lacks them: 0 there.
MSG_EXCEPT = int(lib.SYSVMQ_MSG_EXCEPT) if lib.SYSVMQ_HAS_MSG_EXCEPT else 0
MSG_COPY = int(lib.SYSVMQ_MSG_COPY) if lib.SYSVMQ_HAS_MSG_COPY else 0
LONG_MAX: int = lib.SYSVMQ_LONG_MAX
LONG_MIN: int = lib.SYSVMQ_LONG_MIN
KEY_BITS = ffi.sizeof("key_t") * 8
SIZE_T_BITS = ffi.sizeof("size_t") * 8

# ---- views of a caller's buffer ----
#
# A cdata view of a caller's buffer holds an export of it until released. A call that
# fails leaves its frame in the exception's traceback, often in a reference cycle; if the
# view were still alive there, CPython's collector would meet a memoryview it cannot clear
# ("memoryview has 1 exported buffer") and crash. So every view lives in a with-block.


def payload(message: Any) -> Any:
    """`message` as something a `const char *` parameter takes, whose len() is the length
    of the memory C reads: exact bytes, or a cdata view of the object's buffer (a
    subclass of bytes or str may lie in its __len__, __class__ or encode())."""
    if issubclass(type(message), str):  # isinstance() would believe a lying __class__
        return str.encode(message, "utf-8")
    if type(message) is bytes:
        return message
    try:
        return ffi.from_buffer(message)
    except TypeError:
        raise TypeError(f"message must be bytes-like or str, not {type_name(message)}") from None
    except (BufferError, ValueError):  # a non-contiguous buffer: one copy in C order
        return memoryview(message).tobytes()


@contextmanager
def exported(message: Any) -> Iterator[Any]:
    """payload(message) for the length of a with-block, released at its end."""
    data = payload(message)
    try:
        yield data
    finally:
        if type(data) is not bytes:
            ffi.release(data)


@contextmanager
def writable(buffer: Any) -> Iterator[Any]:
    """A cdata view of the writable, contiguous `buffer` for the length of a with-block."""
    try:
        dest = ffi.from_buffer(buffer, require_writable=True)
    except (TypeError, BufferError, ValueError):
        # Checked before the call: the kernel would drop a message it cannot write (EFAULT).
        raise TypeError(f"buffer must be a writable, contiguous buffer, not {type_name(buffer)}") from None
    try:
        yield dest
    finally:
        ffi.release(dest)
