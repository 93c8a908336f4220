"""The compiled module, with every C type the package uses realized before any thread runs.

PyPy's cffi realizes a type at its first use into a cache that has no lock: threads whose
first uses of different types meet may be handed each other's type (a ``sysvmq_token *``
for a ``sysvmq_handle *``) and keep it. So each type is realized here, once, at import,
while the import lock keeps every other thread out of the package; so is every function
of ``lib``. ``import sysvmq`` runs this (through sysvmq._lowlevel).
"""

from sysvmq._sysvmq_cffi import ffi, lib

__all__ = ["CDECLS", "ffi", "lib"]

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
