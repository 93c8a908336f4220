"""Throughput and latency against sysv_ipc, ipcqueue, multiprocessing.Queue and C.

    python bench/throughput.py             # the full suite, about two minutes
    python bench/throughput.py --quick     # the same as `sysvmq bench`

The measuring code lives in sysvmq/benchmark.py so that the installed `sysvmq bench`
runs it too; results with the machine they ran on are in bench/RESULTS.md.
"""

import sys

from sysvmq.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
