"""Throughput and latency against sysv_ipc, ipcqueue, multiprocessing.Queue and C.

    python bench/throughput.py             # the full suite, about two minutes
    python bench/throughput.py --quick     # the same as `sysvmq bench`, plus the C floor

Compiles benchmark_ref.c (the same system calls in C) when a C compiler is there;
the measuring code is sysvmq/tools/benchmark.py, which the installed `sysvmq bench`
runs without the C floor. Results, with the machine they ran on, are in
bench/RESULTS.md.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from typing import Optional

from sysvmq.tools.benchmark import main

HERE = os.path.dirname(os.path.abspath(__file__))


def compile_reference() -> Optional[str]:
    """The C reference program, compiled now; None without a C compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        print("no C compiler: the C floor is left out", file=sys.stderr)
        return None
    binary = os.path.join(tempfile.mkdtemp(prefix="sysvmq-bench-"), "ref")
    subprocess.run([compiler, "-O2", "-o", binary, os.path.join(HERE, "benchmark_ref.c")], check=True)
    return binary


if __name__ == "__main__":
    sys.exit(main(binary=compile_reference()))
