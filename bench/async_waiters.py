"""What many coroutines waiting on one queue cost: messages/s and threads.

    python bench/async_waiters.py               # about a minute
    python bench/async_waiters.py --rounds 3 --waiters 1 10

N asyncio tasks loop on ``receive_async(1)`` on one private queue; once they all
wait, another process sends 2000 messages of type 1 as fast as it can, and the
clock runs until the tasks have received them all. The contenders (N = 1, 10, 100,
1000) run once per round in shuffled order, so noise from the machine lands on all
of them alike; the table shows medians and ranges over the rounds, the time against
the 10-waiter one's of the same round, and the threads of this process while the N
tasks wait (/proc/self/status).
"""

import argparse
import asyncio
import platform
import random
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Tuple

import sysvmq

SENDER = """
import sys, sysvmq
mq = sysvmq.MessageQueue.from_id(int(sys.argv[1]))
mq.receive(2)  # go
for i in range(int(sys.argv[2])):
    mq.send(b"%d" % i, 1)
"""


def threads() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


async def all_waiting(mq: sysvmq.MessageQueue, waiters: int) -> None:
    """Let every task reach its wait: none can see a message yet, so they all wait."""
    for _ in range(5):
        await asyncio.sleep(0)
    await asyncio.sleep(0.05 + waiters * 0.0005)


async def one_run(waiters: int, messages: int) -> Tuple[float, int]:
    """(seconds from "go" to the last message received, threads while the tasks waited)."""
    mq = sysvmq.MessageQueue(sysvmq.IPC_PRIVATE)
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    sender = subprocess.Popen([sys.executable, "-c", SENDER, str(mq.id), str(messages)], env=env)
    received = 0
    finished = asyncio.get_running_loop().create_future()

    async def receiver() -> None:
        nonlocal received
        while True:
            await mq.receive_async(1)
            received += 1
            if received == messages and not finished.done():
                finished.set_result(time.perf_counter())

    tasks = [asyncio.ensure_future(receiver()) for _ in range(waiters)]
    try:
        await all_waiting(mq, waiters)
        waiting_threads = threads()
        start = time.perf_counter()
        mq.send(b"go", 2)
        end = await asyncio.wait_for(finished, 120)
        return end - start, waiting_threads
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        sender.wait(30)
        mq.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--waiters", type=int, nargs="+", default=[1, 10, 100, 1000])
    args = parser.parse_args()
    seconds: Dict[int, List[float]] = {n: [] for n in args.waiters}
    counts: Dict[int, List[int]] = {n: [] for n in args.waiters}
    for _ in range(args.rounds):
        order = list(args.waiters)
        random.shuffle(order)
        for n in order:
            took, waiting_threads = asyncio.run(one_run(n, args.messages))
            seconds[n].append(took)
            counts[n].append(waiting_threads)
    print(
        f"sysvmq {sysvmq.__version__} on {platform.python_implementation()} {platform.python_version()}, "
        f"Linux {platform.release()}; {args.messages} messages from another process, "
        f"median of {args.rounds} rounds (min-max)"
    )
    reference = 10 if 10 in seconds else args.waiters[0]
    print(
        f"  {'waiters':>7}  {'k messages/s':>22}  {'seconds':>22}  {'x time of ' + str(reference):>20}  {'threads':>9}"
    )
    for n in args.waiters:
        rates = [args.messages / s / 1000 for s in seconds[n]]
        ratios = [s / r for s, r in zip(seconds[n], seconds[reference])]
        print(
            f"  {n:>7}  {statistics.median(rates):>8.1f} ({min(rates):5.1f}-{max(rates):5.1f})"
            f"  {statistics.median(seconds[n]):>8.3f} ({min(seconds[n]):.3f}-{max(seconds[n]):.3f})"
            f"  {statistics.median(ratios):>6.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
            f"  {statistics.median(counts[n]):>4.0f} ({min(counts[n])}-{max(counts[n])})"
        )


if __name__ == "__main__":
    main()
