"""Throughput and latency of sysvmq against its peers and the C floor, in one run.

    python bench/throughput.py            # the full suite, with the C floor (about two minutes)
    sysvmq bench                          # the quick version (under 15 s), no compiler needed

Measures each section in rounds, every contender once per round in shuffled order,
so that machine noise lands on all of them alike; prints the median of the rounds,
and each ratio as the median of the per-round ratios with their range (min-max over
the rounds), after a header naming the machine, the Python and the commit. Contenders that are not installed (sysv_ipc, ipcqueue) are left out,
and so is the C floor unless the caller hands in its compiled program
(bench/throughput.py builds bench/benchmark_ref.c).
"""

import argparse
import os
import random
import signal
import statistics
import struct
import subprocess
import sys
import time
from typing import Any, Callable, ContextManager, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import sysvmq
from sysvmq.tools.benchreport import Result, commit, machine, median_rate, table
from sysvmq.tools.cleanup import Cleanup

sysv_ipc: Any
ipcqueue_sysvmq: Any
try:
    import sysv_ipc  # type: ignore[import-untyped,import-not-found,no-redef,unused-ignore]
except ImportError:  # optional peer
    sysv_ipc = None
try:
    import ipcqueue.sysvmq as ipcqueue_sysvmq  # type: ignore[import-untyped,import-not-found,no-redef,unused-ignore]
except ImportError:  # optional peer
    ipcqueue_sysvmq = None


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_c(binary: str, *args: object) -> float:
    out = subprocess.run([binary, *map(str, args)], capture_output=True, text=True, check=True)
    return float(out.stdout)


#: Every queue the benchmark makes is removed on the way out, whatever signal ends it (but SIGKILL).
CLEANUP = Cleanup()


def new_queue(keyed: bool = False) -> ContextManager[sysvmq.MessageQueue]:
    """A private queue, or one with a random key (sysv_ipc attaches by key only)."""
    key = random.randrange(1, 2**31) if keyed else sysvmq.IPC_PRIVATE
    return CLEANUP.made(lambda: sysvmq.MessageQueue(key, create=True, exclusive=True), sysvmq.MessageQueue.destroy)


def peer_queues() -> ContextManager[Tuple[Any, Any]]:
    """A private queue of each installed peer (sysv_ipc, ipcqueue), None for one that is not."""

    def make() -> Tuple[Any, Any]:
        q = sysv_ipc.MessageQueue(None, sysv_ipc.IPC_CREX) if sysv_ipc is not None else None
        return q, ipcqueue_sysvmq.Queue() if ipcqueue_sysvmq is not None else None

    def remove(queues: Tuple[Any, Any]) -> None:
        if queues[0] is not None:
            queues[0].remove()
        if queues[1] is not None:
            queues[1].close()  # removes its private queue

    return CLEANUP.made(make, remove)


def rounds(contenders: Dict[str, Callable[[], float]], count: int) -> Result:
    """Run every contender `count` times, interleaved: the seconds of each run."""
    times: Result = {name: [] for name in contenders}
    for _ in range(count):
        order = list(contenders)
        random.shuffle(order)
        for name in order:
            times[name].append(contenders[name]())
    return times


# ---- one process: send + receive pairs ----


def pairs(send: Callable[[bytes], Any], receive: Callable[[], Any], payload: bytes, n: int) -> float:
    """Seconds for `n` sends, each followed by a receive, through any library's two calls."""
    start = time.perf_counter()
    for _ in range(n):
        send(payload)
        receive()
    return time.perf_counter() - start


def pairs_batch_sysvmq(mq: sysvmq.MessageQueue, payload: bytes, n: int, batch: int) -> float:
    messages = [payload] * batch
    send_many, receive_many = mq.send_many, mq.receive_many
    start = time.perf_counter()
    for _ in range(n // batch):
        send_many(messages)
        receive_many(batch)
    return time.perf_counter() - start


# ---- two processes: worker side ----


BATCH = 64
"""Messages per send_many/receive_many call of the `sysvmq-batch` stream."""


class Endpoint(NamedTuple):
    """One library's calls on the queue the two processes share, bound once so that the
    timed loops pay for nothing but the calls."""

    send: Callable[[bytes, int], Any]
    receive: Callable[[int], Tuple[bytes, int]]
    """Data and type of the first message msgrcv's `type` argument selects."""
    send_one: Callable[[bytes], Any]
    receive_one: Callable[[], bytes]
    batches: Optional[sysvmq.MessageQueue]
    """The queue, when a stream goes BATCH messages a call (`sysvmq-batch`); None: one a call."""


def _endpoint(impl: str, qid: int) -> Endpoint:
    if impl == "sysv_ipc":
        q = _sysv_ipc_by_id(qid)
        return Endpoint(
            lambda data, t: q.send(data, type=t), lambda t: q.receive(type=t), q.send, lambda: q.receive()[0], None
        )
    mq = sysvmq.MessageQueue.from_id(qid)

    def receive(t: int) -> Tuple[bytes, int]:
        message = mq.receive_message(t)
        return message.data, message.type

    return Endpoint(mq.send, receive, mq.send, mq.receive, mq if impl == "sysvmq-batch" else None)


def _sysv_ipc_by_id(qid: int) -> Any:
    key = sysvmq.MessageQueue.from_id(qid).key
    if key == 0:
        raise SystemExit("sysv_ipc attaches by key only")
    return sysv_ipc.MessageQueue(key - 2**32 if key >= 2**31 else key, max_message_size=sysvmq.limits().msgmax)


# Each role returns the seconds of its loop; `rest` holds the numbers after the msqid.


def _produce(impl: str, qid: int, rest: List[int]) -> float:
    """`count` messages of `size` bytes, then an empty one of type 2."""
    end = _endpoint(impl, qid)
    size, count = rest
    data = b"x" * size
    start = time.perf_counter()
    if end.batches is not None:
        mq, batch = end.batches, [data] * BATCH
        for _ in range(count // BATCH):
            mq.send_many(batch)
    else:
        send_one = end.send_one
        for _ in range(count):
            send_one(data)
    end.send(b"", 2)
    return time.perf_counter() - start


def _consume(impl: str, qid: int, rest: List[int]) -> float:
    """Every message up to the empty one, timed from the first."""
    end = _endpoint(impl, qid)
    if end.batches is not None:
        mq = end.batches
        messages = mq.receive_many(BATCH)
        start = time.perf_counter()
        while len(messages[-1]):
            messages = mq.receive_many(BATCH)
    else:
        receive_one = end.receive_one
        receive_one()
        start = time.perf_counter()
        while len(receive_one()):
            pass
    return time.perf_counter() - start


def _ping(impl: str, qid: int, rest: List[int]) -> float:
    """`count` round trips: type 1 out, type 2 back; then type 3 to end the pong."""
    end = _endpoint(impl, qid)
    (count,) = rest
    send, receive = end.send, end.receive
    start = time.perf_counter()
    for _ in range(count):
        send(b"12345678", 1)
        receive(2)
    send(b"", 3)
    return time.perf_counter() - start


def _pong(impl: str, qid: int, rest: List[int]) -> float:
    end = _endpoint(impl, qid)
    send, receive = end.send, end.receive
    start = time.perf_counter()
    while receive(-3)[1] != 3:
        send(b"12345678", 2)
    return time.perf_counter() - start


def _put(impl: str, qid: int, rest: List[int]) -> float:
    """sysvmq.Queue: `count` pickled objects, then None."""
    (count,) = rest
    put = sysvmq.Queue.from_id(qid).put
    start = time.perf_counter()
    for i in range(count):
        put(job(i))
    put(None)
    return time.perf_counter() - start


def _get(impl: str, qid: int, rest: List[int]) -> float:
    get = sysvmq.Queue.from_id(qid).get
    get()
    start = time.perf_counter()
    while get() is not None:
        pass
    return time.perf_counter() - start


ROLES: Dict[str, Callable[[str, int, List[int]], float]] = {
    "produce": _produce,
    "consume": _consume,
    "ping": _ping,
    "pong": _pong,
    "put": _put,
    "get": _get,
}


def worker(argv: Sequence[str]) -> None:
    """Entry point of the processes this module starts (ROLE IMPL MSQID NUMBER...): prints
    the seconds of its loop."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C reaches every process: no tracebacks
    role, impl, qid = argv[0], argv[1], int(argv[2])
    seconds = ROLES[role](impl, qid, [int(a) for a in argv[3:]])
    print(f"{seconds:.9f}", flush=True)


def job(i: int) -> Dict[str, Any]:
    """The object the Queue section sends: a small dict, about 60 bytes pickled."""
    return {"job": i, "args": [1, 2, 3], "name": "resize"}


def process_pair(first: List[str], second: List[str]) -> float:
    """Run two processes, `second` started first: the seconds the slower one reports.

    If either fails, the other is killed rather than left waiting for its peer.
    """
    with _process(second) as b, _process(first) as a:
        _wait_for(lambda: (a.poll(), b.poll()), f"{first} / {second}")
    return max(float(a.stdout.read()), float(b.stdout.read()))  # type: ignore[union-attr]


def _wait_for(poll: Callable[[], Tuple[Optional[int], Optional[int]]], what: str) -> None:
    """Until `poll()` gives both exit statuses, 0 each (else RuntimeError naming `what`). A
    stop signal is held while it polls: subprocess's poll() takes a lock, and a raise just
    after it was taken would leave it taken for the wait() that ends the process."""
    deadline = time.monotonic() + 300
    while True:
        with CLEANUP.held():
            statuses = poll()
        if any(statuses) or (None in statuses and time.monotonic() > deadline):
            raise RuntimeError(f"benchmark process failed: {what}")
        if None not in statuses:
            return
        time.sleep(0.005)


def _process(argv: List[str]) -> "ContextManager[subprocess.Popen[str]]":
    """A process running `argv`, killed on the way out if its peer failed or the benchmark was stopped."""

    def ended(process: "subprocess.Popen[str]") -> None:
        if process.poll() is None:
            process.kill()
        process.wait()

    return CLEANUP.made(lambda: subprocess.Popen(argv, stdout=subprocess.PIPE, text=True), ended)


def python_pair(first: List[str], second: List[str]) -> float:
    script = [sys.executable, "-m", "sysvmq.tools.benchmark", "--worker"]
    return process_pair(script + first, script + second)


def c_pair(binary: str, first: Sequence[object], second: Sequence[object]) -> float:
    return process_pair([binary, *map(str, first)], [binary, *map(str, second)])


def mp_objects(count: int) -> float:
    """multiprocessing.Queue carrying the same pickled objects as sysvmq.Queue."""
    return _mp_queue(job(i) for i in range(count))


def mp_stream(size: int, count: int) -> float:
    data = b"x" * size
    return _mp_queue(data for _ in range(count))


def _mp_queue(items: Iterable[Any]) -> float:
    """multiprocessing.Queue from one forked process to another, as the sysvmq streams run
    between two processes: the consumer's seconds from its first item to the None that ends
    the stream. This process only starts, watches and ends them, so a stop signal raised here
    finds none of the queue's locks taken (a lock left taken keeps the exit waiting)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue(maxsize=1024)
    report, reported = os.pipe()  # the consumer's seconds, 8 bytes: a pipe takes no lock

    def produce() -> None:
        _stop_signals_as_a_worker()
        for item in items:
            queue.put(item)
        queue.put(None)

    def consume() -> None:
        _stop_signals_as_a_worker()
        queue.get()
        start = time.perf_counter()
        while queue.get() is not None:
            pass
        os.write(reported, struct.pack("d", time.perf_counter() - start))

    try:
        with _forked(ctx, consume) as consumer, _forked(ctx, produce) as producer:
            _wait_for(lambda: (consumer.exitcode, producer.exitcode), "multiprocessing.Queue")
        (elapsed,) = struct.unpack("d", os.read(report, 8))
    finally:
        os.close(report)
        os.close(reported)
    return float(elapsed)


def _stop_signals_as_a_worker() -> None:
    for signum in Cleanup.SIGNALS:
        signal.signal(signum, signal.SIG_DFL)  # the parent's handlers are not this process's


def _forked(ctx: Any, target: Callable[[], None]) -> "ContextManager[Any]":
    """A forked process running `target`, killed on the way out if it still runs."""

    def started() -> Any:
        process = ctx.Process(target=target)
        process.start()
        return process

    def ended(process: Any) -> None:
        if process.exitcode is None:  # its peer failed, or the benchmark was stopped
            process.kill()  # as sysvmq.tools.demo's consumer: a SIGTERM before its exec is lost
        process.join()

    return CLEANUP.made(started, ended)


# ---- report ----


def section_pairs(binary: Optional[str], n: int, n_rounds: int) -> None:
    payload = b"x" * 64
    with new_queue() as mq, peer_queues() as (q, iq):
        contenders: Dict[str, Callable[[], float]] = {
            "sysvmq": lambda: pairs(mq.send, mq.receive, payload, n),
            "sysvmq send/recv_many": lambda: pairs_batch_sysvmq(mq, payload, n, 64),
        }
        if binary:
            contenders["C"] = lambda: run_c(binary, "pairs", mq.id, 64, n)
            contenders["C, batches of 64"] = lambda: run_c(binary, "batch", mq.id, 64, n, 64)
        if q is not None:
            contenders["sysv_ipc"] = lambda: pairs(q.send, q.receive, payload, n)
        if iq is not None:
            contenders["ipcqueue"] = lambda: pairs(iq.put, iq.get, payload, n // 4) * 4
        log("one process, 64 B send + receive ...")
        times = rounds(contenders, n_rounds)
    rows = sorted(((name, median_rate(t, n) / 1e6) for name, t in times.items()), key=lambda row: -row[1])
    table("One process, 64 B send + receive", "M pairs/s", rows, times, ["sysv_ipc", "C", "C, batches of 64"])


def section_stream(binary: Optional[str], size: int, count: int, n_rounds: int) -> None:
    with new_queue(keyed=True) as mq:
        qid, n = str(mq.id), str(count)
        contenders: Dict[str, Callable[[], float]] = {
            "sysvmq": lambda: python_pair(["produce", "sysvmq", qid, str(size), n], ["consume", "sysvmq", qid]),
            "sysvmq batch": lambda: python_pair(
                ["produce", "sysvmq-batch", qid, str(size), n], ["consume", "sysvmq-batch", qid]
            ),
            "multiprocessing.Queue": lambda: mp_stream(size, count),
        }
        if binary:
            contenders["C"] = lambda: c_pair(binary, ["produce", mq.id, size, count], ["consume", mq.id])
        if sysv_ipc is not None:
            contenders["sysv_ipc"] = lambda: python_pair(
                ["produce", "sysv_ipc", qid, str(size), n], ["consume", "sysv_ipc", qid]
            )
        log(f"producer -> consumer, {size} B messages ...")
        times = rounds(contenders, n_rounds)
    rows = sorted(((name, median_rate(t, count * size) / 1e6) for name, t in times.items()), key=lambda row: -row[1])
    table(
        f"Producer process -> consumer process, {size} B messages ({count} per run, 16 KiB queue)",
        "MB/s",
        rows,
        times,
        ["sysv_ipc", "C", "multiprocessing.Queue"],
    )


def section_pingpong(binary: Optional[str], count: int, n_rounds: int) -> None:
    with new_queue(keyed=True) as mq:
        qid = str(mq.id)
        contenders: Dict[str, Callable[[], float]] = {
            "sysvmq": lambda: python_pair(["ping", "sysvmq", qid, str(count)], ["pong", "sysvmq", qid]),
        }
        if binary:
            contenders["C"] = lambda: c_pair(binary, ["ping", mq.id, count], ["pong", mq.id])
        if sysv_ipc is not None:
            contenders["sysv_ipc"] = lambda: python_pair(
                ["ping", "sysv_ipc", qid, str(count)], ["pong", "sysv_ipc", qid]
            )
        log("ping-pong between two processes ...")
        times = rounds(contenders, n_rounds)
    rows = sorted(((name, statistics.median(t) / count * 1e6) for name, t in times.items()), key=lambda row: row[1])
    table("Ping-pong between two processes, round trip (lower is better)", "µs", rows, times, ["sysv_ipc", "C"], "more")


def section_objects(count: int, n_rounds: int) -> None:
    with new_queue(keyed=True) as mq:
        qid = str(mq.id)
        contenders: Dict[str, Callable[[], float]] = {
            "sysvmq.Queue": lambda: python_pair(["put", "queue", qid, str(count)], ["get", "queue", qid]),
            "multiprocessing.Queue": lambda: mp_objects(count),
        }
        log("Python objects between two processes ...")
        times = rounds(contenders, n_rounds)
    rows = sorted(((name, median_rate(t, count) / 1e3) for name, t in times.items()), key=lambda row: -row[1])
    table(
        f"Producer process -> consumer process, pickled dicts ({count} per run), put/get",
        "k objects/s",
        rows,
        times,
        ["multiprocessing.Queue"],
    )


def run(quick: bool = False, n_rounds: Optional[int] = None, binary: Optional[str] = None) -> int:
    """Every section; `binary` is the compiled C floor (bench/benchmark_ref.c), or None."""
    with CLEANUP:
        return _run(quick, n_rounds, binary)


def _run(quick: bool, n_rounds: Optional[int], binary: Optional[str]) -> int:
    n_rounds = n_rounds or (3 if quick else 9)
    scale = 0.05 if quick else 1.0
    print(f"sysvmq {sysvmq.__version__}, commit {commit()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{machine()}")
    print(
        f"median of {n_rounds} rounds; ratios: median of the per-round ratios (min-max)"
        + ("" if binary else "; no C floor (bench/throughput.py measures it)")
    )
    section_pairs(binary, int(200_000 * scale), n_rounds)
    for size, count in ((16, 200_000), (1024, 100_000), (8192, 40_000)):
        section_stream(binary, size, max(64, int(count * scale) // 64 * 64), n_rounds)
    section_objects(max(500, int(100_000 * scale)), n_rounds)
    section_pingpong(binary, max(500, int(20_000 * scale)), n_rounds)
    return 0


def main(argv: Optional[Sequence[str]] = None, binary: Optional[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and messages: under 15 s")
    parser.add_argument("--rounds", type=int, help="rounds per section")
    args = parser.parse_args(argv)
    return run(args.quick, args.rounds, binary)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2:])
    else:
        sys.exit(main())
