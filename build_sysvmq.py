"""Build sysvmq._sysvmq_cffi: cffi out-of-line API mode over <sys/msg.h>.

The C side lives in csrc/: api.h is the cdef (what Python may call), types.h the
structs both sides share, and shim.c includes the parts (compat.h, wakeup.c, waiters.c,
finish.c, wait.c, ops.c, control.c) into one translation unit. Struct layouts and
constants come from the platform headers at compile time.
"""

import pathlib
import sys
import sysconfig
from typing import Optional, Tuple

from cffi import FFI

CSRC = pathlib.Path(__file__).resolve().parent / "csrc"


def limited_api(implementation: str, version: Tuple[int, int], free_threaded: bool, debug: bool) -> Optional[str]:
    """The oldest CPython a wheel built by this interpreter serves through the stable ABI
    (bdist_wheel's ``py_limited_api``, ``cp39``: a cp39-abi3 wheel), or None: a wheel for this
    interpreter's own ABI only.

    cffi compiles with Py_LIMITED_API wherever CPython has a stable ABI, so one abi3 wheel
    serves every CPython from 3.9 on. A free-threaded CPython has none before 3.15 (setuptools
    refuses the option there, and cffi compiles without Py_LIMITED_API): cp314t gets its own
    wheel. From 3.15 its stable ABI is abi3t, which begins at 3.15: a cp315-abi3.abi3t wheel.
    A debug build compiles without Py_LIMITED_API; PyPy has no stable ABI.
    """
    if implementation != "cpython" or debug:
        return None
    if not free_threaded:
        return "cp39"
    return "cp315" if version >= (3, 15) else None


def this_interpreters_limited_api() -> Optional[str]:
    """limited_api() for the interpreter running the build."""
    return limited_api(
        sys.implementation.name,
        (sys.version_info[0], sys.version_info[1]),
        bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        hasattr(sys, "gettotalrefcount"),
    )


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
