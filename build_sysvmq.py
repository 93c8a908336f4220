"""Build sysvmq._sysvmq_cffi: cffi out-of-line API mode over <sys/msg.h>.

The C side lives in csrc/: api.h is the cdef (what Python may call), types.h the
structs both sides share, and shim.c includes the parts (compat.h, wakeup.c, waiters.c,
finish.c, wait.c, ops.c, control.c) into one translation unit. Struct layouts and
constants come from the platform headers at compile time.
"""

import pathlib

from cffi import FFI

CSRC = pathlib.Path(__file__).resolve().parent / "csrc"


def cdef() -> str:
    """api.h with types.h in place of its include line: cffi's parser takes no #include."""
    types = (CSRC / "types.h").read_text()
    return (CSRC / "api.h").read_text().replace('#include "types.h"\n', types)


ffibuilder = FFI()
ffibuilder.cdef(cdef())
ffibuilder.set_source(
    "sysvmq._sysvmq_cffi",
    '#include "shim.c"\n',
    include_dirs=[str(CSRC)],
    depends=sorted(str(path) for path in CSRC.iterdir() if path.suffix in (".c", ".h")),
    extra_compile_args=["-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
