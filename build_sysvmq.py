"""Build sysvmq._sysvmq_cffi: cffi out-of-line API mode over <sys/msg.h>.

The declarations live in build_sysvmq.h and the C shim in build_sysvmq.c, so
struct layouts and constants come from the platform headers at compile time.
"""

import pathlib
import sys

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent

ffibuilder = FFI()
ffibuilder.cdef((HERE / "build_sysvmq.h").read_text())
ffibuilder.set_source(
    "sysvmq._sysvmq_cffi",
    (HERE / "build_sysvmq.c").read_text(),
    libraries=["rt"] if sys.platform.startswith("linux") else [],
    extra_compile_args=["-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
