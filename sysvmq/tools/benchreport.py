"""How sysvmq/tools/benchmark.py reports: the machine and commit a run measured, and tables
of medians with each ratio as the median of its per-round ratios and their range."""

import os
import platform
import statistics
import subprocess
import sys
from typing import Dict, List, Sequence, Tuple

import sysvmq

#: The seconds of each run of each contender, in round order.
Result = Dict[str, List[float]]


def machine() -> str:
    """The CPU, its count, the kernel and the Python: what a figure depends on."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    python = f"{platform.python_implementation()} {platform.python_version()}"
    if sys.implementation.name == "pypy":
        python += " (PyPy " + ".".join(map(str, sys.pypy_version_info[:3])) + ")"  # type: ignore[attr-defined]
    return f"{model}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; {python}"


def commit() -> str:
    """The git commit of the sysvmq being measured ("+ changes" if its files differ), or
    "installed" outside a checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(sysvmq.__file__)))
    try:
        head = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        changes = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "installed"
    if head.returncode != 0:
        return "installed"
    return head.stdout.strip() + (" + changes" if changes.stdout.strip() else "")


def table(
    title: str, unit: str, rows: List[Tuple[str, float]], times: Result, ratios: Sequence[str], faster_is: str = "less"
) -> None:
    """`rows` (contender, median value), then for each reference its ratio to it: the
    median of the per-round ratios (min-max). With ``faster_is="less"`` (times), a ratio
    above 1 is faster than the reference; with "more" it is the quotient of the times."""
    print(f"\n{title}", flush=True)
    print(f"  {'contender':<24}{unit:>12}" + "".join(f"  {'x ' + r:>24}" for r in ratios))
    for name, value in rows:
        cells = ""
        for ref in ratios:
            if ref not in times:
                cells += f"  {'-':>24}"
                continue
            pairs = zip(times[ref], times[name])
            per_round = sorted(r / t if faster_is == "less" else t / r for r, t in pairs)
            spread = f"({per_round[0]:.2f}-{per_round[-1]:.2f})"
            cells += f"  {statistics.median(per_round):>12.2f} {spread:>11}"
        print(f"  {name:<24}{value:>12,.3f}{cells}")


def median_rate(times: List[float], work: float) -> float:
    return work / statistics.median(times)
