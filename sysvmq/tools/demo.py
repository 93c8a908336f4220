"""``sysvmq demo``: a producer process and a consumer process trade typed messages."""

import multiprocessing
import os
import signal
import sys
from typing import TextIO

from sysvmq.errors import QueueEmptyError
from sysvmq.queue import MessageQueue
from sysvmq.tools.cleanup import Cleanup

URGENT, NORMAL, ALL_SENT, DONE = 1, 2, 9, 10

ORDERS = [
    (NORMAL, "order 1001: 2 x blue widget"),
    (URGENT, "order 1002: replacement part, ship today"),
    (NORMAL, "order 1003: 40 x bolt M6"),
    (URGENT, "order 1004: hospital, ship today"),
    (NORMAL, "order 1005: 1 x gasket"),
]


def consumer(msqid: int) -> None:
    """Wait for the producer's signal, take urgent orders before normal ones, reply."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C reaches both: no traceback from this one
    mq = MessageQueue.from_id(msqid)
    mq.receive(ALL_SENT, timeout=10)
    taken = 0
    while True:
        # -8: the lowest type <= 8 first, so every URGENT order before any NORMAL one.
        try:
            message = mq.receive_message(-8, block=False)
        except QueueEmptyError:
            break
        label = "urgent" if message.type == URGENT else "normal"
        print(f"  consumer pid {os.getpid()} <- type {message.type} ({label}): {message.data.decode()}", flush=True)
        taken += 1
    mq.send(f"handled {taken} orders", type=DONE)


def _started(msqid: int) -> "multiprocessing.process.BaseProcess":
    # A SIGCHLD the parent set to be ignored would have the kernel reap the consumer as it
    # ends: its exit status lost, the demo would fail. Nothing in this process needs it ignored.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    child = multiprocessing.get_context("spawn").Process(target=consumer, args=(msqid,))
    child.start()
    return child


def _ended(child: "multiprocessing.process.BaseProcess") -> None:
    if child.is_alive():  # the producer stopped early: the consumer goes first, then the queue
        # SIGKILL: a SIGTERM that reaches a spawned child between its fork and its exec is
        # taken by the handler it inherited, and lost; the queue goes with the demo anyway.
        child.kill()
    child.join()


def run(out: TextIO = sys.stdout) -> int:
    """The demo; its queue removed on every way out but SIGKILL (see sysvmq.tools.cleanup)."""

    def removed(mq: MessageQueue) -> None:
        mq.destroy()
        print(f"queue id {mq.id} removed", file=out)

    with Cleanup() as cleanup, cleanup.made(lambda: MessageQueue(0, create=True), removed) as mq:
        print(f"private queue id {mq.id} (key IPC_PRIVATE); producer pid {os.getpid()}", file=out, flush=True)
        with cleanup.made(lambda: _started(mq.id), _ended) as child:
            for mtype, text in ORDERS:
                mq.send(text, type=mtype)
                label = "urgent" if mtype == URGENT else "normal"
                print(f"  producer pid {os.getpid()} -> type {mtype} ({label}): {text}", file=out, flush=True)
            stats = mq.stats()
            print(f"queued: {stats.count} messages, {stats.bytes} bytes of {stats.max_bytes}", file=out, flush=True)
            mq.send(b"", type=ALL_SENT)
            reply = mq.receive(DONE, timeout=10)
            child.join(10)
        print(f"  producer <- type {DONE}: {reply.decode()}", file=out)
        stats = mq.stats()
        print(
            f"stats: count={stats.count} bytes={stats.bytes} max_bytes={stats.max_bytes} "
            f"last_send_pid={stats.last_send_pid} last_receive_pid={stats.last_receive_pid} "
            f"mode={stats.mode:#o}",
            file=out,
        )
        return 0 if child.exitcode == 0 else 1
