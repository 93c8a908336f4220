"""Nothing lost, duplicated, corrupted or crashed: load, faults, bad input, resources."""

import asyncio
import collections
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import (
    HERE,
    child_env,
    fault_under_blocked_threads,
    signal_once_blocked,
    signals_then,
    wait_until,
    wait_until_waiting,
)

import sysvmq

WORKERS = os.path.join(HERE, "_workers.py")


def spawn(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, WORKERS, *map(str, args)], env=child_env(), stdout=subprocess.PIPE, text=True, **kwargs
    )


def run_load(mq, producers, per_producer, consumers, batch, max_size, types=1, consumer_types=None):
    """Producers and consumers as processes; the (producer, seq, type) each consumer got."""
    consumer_types = consumer_types or [0] * consumers
    readers = [spawn("consume", mq.id, t, batch, 1.0) for t in consumer_types]
    writers = [spawn("produce", mq.id, p, per_producer, max_size, types, batch) for p in range(producers)]
    for w in writers:
        assert w.wait(120) == 0
    got = []
    for r in readers:
        out, _ = r.communicate(timeout=120)
        assert r.returncode == 0
        got.append([tuple(map(int, line.split())) for line in out.splitlines()])
    return got


def payload_limit(mq, limits):
    return min(limits.msgmax, mq.stats().max_bytes // 4)


@pytest.mark.parametrize("batch", [1, 16], ids=["single", "batch"])
def test_many_producers_many_consumers_exactly_once(mq, limits, batch):
    got = run_load(mq, producers=3, per_producer=1500, consumers=3, batch=batch, max_size=payload_limit(mq, limits))
    seen = collections.Counter((p, s) for part in got for p, s, _ in part)
    assert len(seen) == 3 * 1500
    assert max(seen.values()) == 1
    assert set(seen) == {(p, s) for p in range(3) for s in range(1500)}
    assert sum(1 for part in got if part) >= 2  # the work really was shared
    assert mq.stats().count == 0


@pytest.mark.parametrize("batch", [1, 16], ids=["single", "batch"])
def test_single_consumer_sees_each_producer_in_order(mq, limits, batch):
    (got,) = run_load(mq, producers=3, per_producer=1000, consumers=1, batch=batch, max_size=payload_limit(mq, limits))
    by_producer = collections.defaultdict(list)
    for p, s, _ in got:
        by_producer[p].append(s)
    assert dict(by_producer) == {p: list(range(1000)) for p in range(3)}


@pytest.mark.parametrize("batch", [1, 16], ids=["single", "batch"])
def test_typed_routing_gives_each_consumer_only_its_types(mq, limits, batch):
    got = run_load(
        mq,
        producers=2,
        per_producer=900,
        consumers=3,
        batch=batch,
        max_size=payload_limit(mq, limits),
        types=3,
        consumer_types=[1, 2, 3],
    )
    for wanted, part in zip([1, 2, 3], got):
        assert part and {t for _, _, t in part} == {wanted}
    assert sorted((p, s) for part in got for p, s, _ in part) == [(p, s) for p in range(2) for s in range(900)]


def test_queue_removed_under_blocked_processes_and_threads(mq):
    mq.set(max_bytes=4)
    mq.send(b"full")
    procs = [spawn("block", mq.id, what) for what in ("receive", "receive", "send")]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    calls = [(mq.receive, (777,), {}), (mq.receive, (778,), {}), (mq.send, (b"more",), {})]
    errors, elapsed = fault_under_blocked_threads(calls, mq.destroy)
    outcomes = [p.communicate(timeout=5)[0].strip() for p in procs]
    assert elapsed < 5
    results = [type(e).__name__ for e in errors]
    assert outcomes == ["QueueRemovedError"] * 3
    assert results == ["QueueRemovedError"] * 3


def test_sigkilled_consumer_leaves_the_rest_queued(mq):
    from _workers import make

    total = 200  # 200 x 64 B fit the default 16 KiB queue
    mq.send_many([make(0, seq, 64) for seq in range(total)], timeout=10)
    consumer = spawn("slow_consume", mq.id)
    taken = [int(consumer.stdout.readline()) for _ in range(50)]
    consumer.send_signal(signal.SIGKILL)
    consumer.wait(5)
    taken += [int(line) for line in consumer.stdout.read().split()]
    left = [int.from_bytes(m[4:8], "little") for m in mq.receive_many(total, block=False)]
    # At most the one message the consumer held when it died is gone with it.
    missing = set(range(total)) - set(taken) - set(left)
    assert len(missing) <= 1 and not set(taken) & set(left)
    assert left == sorted(left) and (not missing or missing == {max(taken) + 1})


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to uid 65534")
def test_tightened_mode_wakes_a_waiting_receiver_with_permission_denied(mq):
    mq.set(mode=0o666)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, b"r")
            try:
                sysvmq.MessageQueue.from_id(mq.id).receive(timeout=10)
                os._exit(1)
            except sysvmq.PermissionDeniedError:
                os._exit(0)
        finally:
            os._exit(2)
    os.read(read, 1)
    wait_until_waiting(pid=pid)
    start = time.monotonic()
    mq.set(mode=0o600)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert time.monotonic() - start < 5


class Stop(Exception):
    pass


BLOCKING_CALLS = {
    "receive": lambda mq: mq.receive(55),
    "receive_message": lambda mq: mq.receive_message(55),
    "receive timed": lambda mq: mq.receive(55, timeout=30),
    "receive_into": lambda mq: mq.receive_into(bytearray(100), 55),
    "receive_many": lambda mq: mq.receive_many(4, 55),
    "send": lambda mq: mq.send(b"12"),
    "send timed": lambda mq: mq.send(b"12", timeout=30),
    "send_many": lambda mq: mq.send_many([b"12"]),
}


def _prepare(mq, name):
    if name.startswith("send"):
        mq.set(max_bytes=4)
        mq.send(b"full")


def _unblock(mq, name):
    if name.startswith("send"):
        mq.receive()
    else:
        mq.send(b"late", type=55)


@pytest.mark.parametrize("name", list(BLOCKING_CALLS))
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGUSR1])
def test_a_raising_handler_ends_every_blocking_call(mq, name, signum):
    _prepare(mq, name)

    def handler(s, f):
        raise Stop(s)

    previous = signal.signal(signum, handler)
    killer = signal_once_blocked(signum)
    try:
        with pytest.raises(Stop):
            BLOCKING_CALLS[name](mq)
    finally:
        killer.join(15)
        signal.signal(signum, previous)
    # The interrupted call is over: it neither sends nor takes anything afterwards.
    _unblock(mq, name)
    time.sleep(0.05)  # a grace window: a send or take of that call still to come would show in the count
    assert mq.stats().count == (0 if name.startswith("send") else 1)


@pytest.mark.parametrize("name", list(BLOCKING_CALLS))
def test_a_returning_handler_lets_every_blocking_call_complete(mq, name):
    _prepare(mq, name)
    with signals_then(signal.SIGUSR2, 3, lambda: _unblock(mq, name)) as calls:
        BLOCKING_CALLS[name](mq)
    assert len(calls) == 3


def test_fork_with_open_handles(mq):
    mq.send(b"from parent")
    blocked = threading.Thread(target=lambda: mq.receive(99, timeout=3), daemon=True)
    blocked.start()
    wait_until_waiting(blocked.native_id)  # a thread of the parent is waiting while it forks
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            if mq.receive() == b"from parent":
                mq.send(b"from child", type=2)
                try:
                    mq.receive(98, timeout=0.1)
                except sysvmq.QueueTimeoutError:
                    mq.close()  # the child's close does not touch the parent's threads
                    code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert not mq.closed and blocked.is_alive()
    assert mq.receive(2, timeout=5) == b"from child"
    mq.send(b"release", type=99)
    blocked.join(5)
    assert not blocked.is_alive()


def _unshare_available():
    try:
        return subprocess.run(["unshare", "--ipc", "true"], capture_output=True, env=child_env()).returncode == 0
    except FileNotFoundError:
        return False


LIMITS_IN_NAMESPACE = r"""
import sysvmq
with open("/proc/sys/kernel/msgmni", "w") as f:
    f.write("4")
made = []
try:
    while True:
        made.append(sysvmq.MessageQueue(sysvmq.IPC_PRIVATE))
except sysvmq.ResourceLimitError as e:
    assert e.errno == 28 and "kernel.msgmni" in str(e), e
    print(len(made))
with open("/proc/sys/kernel/msgmnb", "w") as f:   # a namespace may raise what the host may not
    f.write("1048576")
big = sysvmq.MessageQueue(sysvmq.IPC_PRIVATE) if len(made) < 4 else made[0]
big.set(max_bytes=1048576)
limit = sysvmq.limits().msgmax
big.send_many([b"x" * limit] * (1048576 // limit))
print(big.stats().count)
"""


@pytest.mark.skipif(not _unshare_available(), reason="unshare --ipc is not permitted here")
def test_kernel_limits_in_a_private_ipc_namespace(limits):
    out = subprocess.run(
        ["unshare", "--ipc", sys.executable, "-c", LIMITS_IN_NAMESPACE],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    made, count = map(int, out.stdout.split())
    assert made == 4
    assert count == 1048576 // limits.msgmax


def test_edges_of_every_range(mq, limits):
    from sysvmq.queue import LONG_MAX, LONG_MIN

    mq.send(b"sentinel", type=LONG_MAX)
    cases = [
        (lambda: mq.send(b"x", type=LONG_MAX + 1), OverflowError),
        (lambda: mq.send(b"x", type=LONG_MIN), ValueError),
        (lambda: mq.receive(LONG_MIN - 1), OverflowError),
        (lambda: mq.receive_into(b"readonly"), TypeError),
        (lambda: mq.receive_into(bytearray(2), LONG_MAX), sysvmq.MessageTooLargeError),
        (lambda: sysvmq.MessageQueue(2**32), OverflowError),
        (lambda: sysvmq.MessageQueue(-(2**31) - 1), OverflowError),
        (lambda: mq.send(b"x" * (limits.msgmax + 1)), sysvmq.MessageTooLargeError),
        (lambda: mq.receive_many(2**64), OverflowError),
        (lambda: mq.peek(LONG_MAX + 1), OverflowError),
    ]
    for call, error in cases:
        with pytest.raises(error):
            call()
        assert mq.peek() == sysvmq.Message(LONG_MAX, b"sentinel")
    assert mq.stats().count == 1


FUZZ = os.path.join(HERE, "_fuzz_api.py")


@pytest.mark.parametrize("seed", [1, 2])
def test_arbitrary_arguments_never_crash_nor_lose_the_sentinel(seed):
    # In a subprocess, so that a crash of the interpreter fails the test instead of the run.
    out = subprocess.run(
        [sys.executable, FUZZ, str(seed), "1000"], env=child_env(), capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "inputs tried" in out.stdout


def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def flat(work, operations, chunk):
    """RSS growth (KiB) over `operations` calls after a warm-up of one chunk."""
    work(chunk)
    before = rss_kib()
    done = 0
    while done < operations:
        work(chunk)
        done += chunk
    return rss_kib() - before


async def send_and_receive_async(mq, payload, n):
    for _ in range(n):
        await mq.send_async(payload)
        await mq.receive_async()


def test_memory_is_flat_on_every_path(mq, operations):
    payload = b"m" * 100

    def single(n):
        for _ in range(n):
            mq.send(payload)
            mq.receive()

    def batch(n):
        messages = [payload] * 64
        for _ in range(n // 64):
            mq.send_many(messages)
            mq.receive_many(64)

    def timed(n):
        for _ in range(n):
            mq.send(payload, timeout=1)
            mq.receive_message(timeout=1)

    def asynchronous(n):
        asyncio.run(send_and_receive_async(mq, payload, n))

    growth = {
        "single": flat(single, operations // 2, 20_000),
        "batch": flat(batch, operations // 2, 64 * 1000),
        "timed": flat(timed, operations // 2, 20_000),
        "async": flat(asynchronous, operations // 2, 5_000),
    }
    print(f"RSS growth (KiB) over {operations:,} operations per path: {growth}")
    assert max(growth.values()) < 2048, growth


def expect_removed(victim):
    with pytest.raises(sysvmq.QueueRemovedError):
        victim.receive()


def test_no_timers_threads_or_descriptors_left_behind(mq, monkeypatch):
    from sysvmq import aio

    monkeypatch.setattr(aio, "_IDLE_SECONDS", 0.2)
    fds = len(os.listdir("/proc/self/fd"))
    threads = threading.active_count()
    for _ in range(200):
        with pytest.raises(sysvmq.QueueTimeoutError):
            mq.receive(timeout=0.0005)

    async def waits():
        for _ in range(20):
            with pytest.raises(sysvmq.QueueTimeoutError):
                await mq.receive_async(timeout=0.005)

    asyncio.run(waits())
    with open("/proc/self/timers") as f:
        assert not [line for line in f if line.startswith("ID:")]
    deadline = time.monotonic() + 5
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == threads
    assert len(os.listdir("/proc/self/fd")) == fds


def test_soak(mq, limits, soak_seconds):
    """Load and faults mixed for --soak seconds; prints what it did."""
    from _workers import make

    deadline = time.monotonic() + soak_seconds
    counts = collections.Counter()
    size = payload_limit(mq, limits)
    while time.monotonic() < deadline:
        got = run_load(
            mq, producers=2, per_producer=300, consumers=2, batch=1 + counts["rounds"] % 2 * 15, max_size=size
        )
        seen = collections.Counter((p, s) for part in got for p, s, _ in part)
        assert len(seen) == 600 and max(seen.values()) == 1
        counts["messages moved"] += 600
        # A fault each round: a removed queue under a blocked thread, then a fresh queue.
        victim = sysvmq.MessageQueue(sysvmq.IPC_PRIVATE)
        waiter = threading.Thread(target=expect_removed, args=(victim,))
        waiter.start()
        wait_until_waiting(waiter.native_id)
        victim.destroy()
        waiter.join(5)
        assert not waiter.is_alive()
        counts["faults injected"] += 1
        # And a signal into a blocking call.
        mq.send(make(9, counts["rounds"], 32), type=3)
        handled = counts["signals handled"] + 1
        previous = signal.signal(signal.SIGUSR1, lambda s, f: counts.update(["signals handled"]))
        try:
            threading.Timer(0.01, signal.pthread_kill, (threading.get_ident(), signal.SIGUSR1)).start()
            assert mq.receive(3, timeout=5)
            wait_until(lambda handled=handled: counts["signals handled"] == handled, "the signal was never handled")
        finally:
            signal.signal(signal.SIGUSR1, previous)
        counts["rounds"] += 1
    print(f"soak {soak_seconds:.0f} s: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + "; nothing lost")
    assert counts["rounds"] >= 1 and mq.stats().count == 0
