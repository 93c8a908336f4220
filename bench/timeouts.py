"""What timeouts cost: overshoot, wake-up latency, the fast path, and leaks.

    python bench/timeouts.py            # about half a minute
    python bench/timeouts.py --quick

1. Overshoot: how late a receive(timeout=T) on an empty queue raises (the helper
   thread signals the waiter at its deadline).
2. Wake-up latency: another process sends a message stamped with CLOCK_MONOTONIC
   while this one waits; the time from the stamp to receive() returning, for a
   plain blocking receive, a timed receive, and IPC_NOWAIT polling with backoff.
3. Fast path: receive(timeout=1) against receive() when messages are waiting.
4. Leaks: RSS and threads of this process before and after many timed calls
   that had to wait for a deadline.
"""

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

import sysvmq

SENDER = """
import os, random, sys, time, sysvmq
mq = sysvmq.MessageQueue.from_id(int(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    mq.receive(2)                     # the receiver is about to wait
    time.sleep(random.uniform(0.001, 0.002))
    mq.send(b"%d" % time.monotonic_ns(), 1)
"""


def percentile(values: List[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def overshoot(mq: sysvmq.MessageQueue, timeout: float, samples: int) -> List[float]:
    late = []
    for _ in range(samples):
        start = time.monotonic()
        try:
            mq.receive(timeout=timeout)
        except sysvmq.QueueTimeoutError:
            late.append(time.monotonic() - start - timeout)
    return late


def poll(mq: sysvmq.MessageQueue) -> bytes:
    """What users write without timeouts: IPC_NOWAIT with a growing sleep."""
    delay = 0.00005
    while True:
        try:
            return mq.receive(1, block=False)
        except sysvmq.QueueEmptyError:
            time.sleep(delay)
            delay = min(delay * 2, 0.001)


def wakeups(mq: sysvmq.MessageQueue, receive: Callable[[], bytes], count: int) -> List[float]:
    sender = subprocess.Popen([sys.executable, "-c", SENDER, str(mq.id), str(count)])
    latencies = []
    try:
        for _ in range(count):
            mq.send(b"", 2)
            data = receive()
            latencies.append((time.monotonic_ns() - int(data)) / 1e3)
    finally:
        sender.wait(60)
    return latencies


def fast_path(mq: sysvmq.MessageQueue, rounds: int, batch: int = 200) -> Dict[str, float]:
    payload = b"x" * 64
    times: Dict[str, List[float]] = {"receive()": [], "receive(timeout=1)": []}
    for _ in range(rounds):
        for name in random.sample(list(times), len(times)):
            for _ in range(batch):
                mq.send(payload)
            receive = mq.receive
            start = time.perf_counter()
            if name == "receive()":
                for _ in range(batch):
                    receive()
            else:
                for _ in range(batch):
                    receive(timeout=1)
            times[name].append((time.perf_counter() - start) / batch)
    return {name: 1 / statistics.median(t) / 1e6 for name, t in times.items()}


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def threads() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    samples, wakes, calls = (50, 100, 10_000) if args.quick else (300, 500, 100_000)
    print(
        f"sysvmq {sysvmq.__version__} on {platform.python_implementation()} {platform.python_version()}, "
        f"Linux {platform.release()}, {os.cpu_count()} CPUs; wake-up signal {sysvmq.wakeup_signal()}"
    )
    with sysvmq.MessageQueue(sysvmq.IPC_PRIVATE) as mq:
        try:
            print(f"\nTimeout overshoot, {samples} timed receives each (µs late)")
            print(f"  {'timeout':>10}{'median':>10}{'p99':>10}")
            for timeout in (0.001, 0.005, 0.02):
                late = [x * 1e6 for x in overshoot(mq, timeout, samples)]
                print(f"  {timeout * 1e3:>8.0f}ms{statistics.median(late):>10.0f}{percentile(late, 99):>10.0f}")

            print(f"\nWake-up latency, {wakes} messages from another process (µs from send to return)")
            print(f"  {'receive':<28}{'median':>10}{'p99':>10}")
            modes: Dict[str, Callable[[], bytes]] = {
                "receive()": lambda: mq.receive(1),
                "receive(timeout=10)": lambda: mq.receive(1, timeout=10),
                "polling, IPC_NOWAIT + sleep": lambda: poll(mq),
            }
            results: Dict[str, List[float]] = {name: [] for name in modes}
            for _ in range(5):  # interleaved, so that noise lands on each alike
                for name in random.sample(list(modes), len(modes)):
                    results[name] += wakeups(mq, modes[name], wakes // 5)
            for name, lat in results.items():
                print(f"  {name:<28}{statistics.median(lat):>10.1f}{percentile(lat, 99):>10.1f}")

            print("\nFast path, a message already waiting (M receives/s)")
            rates = fast_path(mq, 30 if args.quick else 150)
            for name, rate in rates.items():
                print(f"  {name:<28}{rate:>10.3f}")
            print(f"  {'ratio':<28}{rates['receive(timeout=1)'] / rates['receive()']:>10.2f}")

            print(f"\n{calls:,} timed receives that arm a deadline")
            before_rss, before_threads = rss_kib(), threads()
            start = time.monotonic()
            for _ in range(calls):
                try:
                    mq.receive(timeout=0.00001)
                except sysvmq.QueueTimeoutError:
                    pass
            print(
                f"  took {time.monotonic() - start:.1f} s; RSS {before_rss} -> {rss_kib()} KiB; "
                f"threads {before_threads} -> {threads()}"
            )
        finally:
            mq.destroy()


if __name__ == "__main__":
    main()
