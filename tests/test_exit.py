"""A process that exits while a thread of it waits in a receive loses no message.

While the interpreter finalizes, a thread that comes back from a system call is stopped
when it asks for the GIL (or parked for good): a message the kernel handed it then would
be gone. Here a producer streams numbered messages while a consumer process is started
and ends normally, again and again, its daemon thread waiting in a receive each time; every
message must end up forwarded by a consumer or still in the queue, each exactly once.
"""

import gc
import threading

import pytest
from conftest import run_python

import sysvmq

#: How the consumer's daemon thread takes one message: `mq` is the stream.
TAKES = {
    "receive": "mq.receive()",
    "receive with a timeout": "mq.receive(timeout=30)",
    "receive_message": "mq.receive_message().data",
    "for in": "next(messages).data",
    "receive_many": "b''.join(mq.receive_many(1))",
    "receive_into": "bytes(into[: mq.receive_into(into)[0]])",
    "Queue.get": "stream.get()",
}

CONSUMER = """
import os, sys, threading, time
import sysvmq

mq, out = (sysvmq.MessageQueue.from_id(int(msqid)) for msqid in sys.argv[1:3])
stream = sysvmq.Queue.from_id(mq.id, serializer=None)
messages = iter(mq)
into = bytearray(64)
handled = 0
ready = threading.Event()

def consume():
    global handled
    ready.set()
    while True:
        out.send({take})
        handled += 1

worker = threading.Thread(target=consume, daemon=True)
worker.start()
ready.wait()
wchan = f"/proc/self/task/{{worker.native_id}}/wchan"
end = time.monotonic() + 30
# End normally once the thread has forwarded a few messages and waits for the next one.
while time.monotonic() < end:
    with open(wchan) as f:
        if handled >= 3 and "msgrcv" in f.read():
            break
"""


def drain(mq: sysvmq.MessageQueue) -> list:
    taken = []
    while True:
        try:
            taken.append(int(mq.receive(block=False)))
        except sysvmq.QueueEmptyError:
            return taken


@pytest.mark.parametrize("take", sorted(TAKES))
def test_consumers_that_exit_under_a_streaming_producer_lose_nothing(take, make_queue):
    mq = make_queue(sysvmq.IPC_PRIVATE)
    out = make_queue(sysvmq.IPC_PRIVATE)
    sent = 0
    stop = threading.Event()

    def produce() -> None:
        nonlocal sent
        while not stop.is_set():
            mq.send(b"%d" % sent, timeout=5)
            sent += 1
            stop.wait(0.0005)  # a steady stream, not a flood: the consumers keep up

    forwarded = []
    producer = threading.Thread(target=produce)
    producer.start()
    try:
        for _ in range(20):
            child = run_python(CONSUMER.format(take=TAKES[take]), mq.id, out.id)
            assert child.returncode == 0, child.stderr[-2000:]
            forwarded += drain(out)
    finally:
        stop.set()
        producer.join()
    left = drain(mq)
    everything = sorted(forwarded + left)
    assert everything == list(range(sent)), (
        f"lost {sorted(set(range(sent)) - set(everything))[:10]}, "
        f"doubled {sorted(n for n in set(everything) if everything.count(n) > 1)[:10]}"
    )


FORKS_WHILE_A_THREAD_RECEIVES = """
import os, sys, threading, time, warnings
import sysvmq

warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() with threads running
mq = sysvmq.MessageQueue.from_id(int(sys.argv[1]))
worker = threading.Thread(target=mq.receive, daemon=True)
worker.start()
wchan = f"/proc/self/task/{worker.native_id}/wchan"
end = time.monotonic() + 30
while time.monotonic() < end:
    with open(wchan) as f:
        if "msgrcv" in f.read():
            break
start = time.monotonic()
child = os.fork()
if child == 0:
    sys.exit(0)  # a normal exit: atexit handlers run
os.waitpid(child, 0)
print(time.monotonic() - start)
"""


def test_a_child_forked_while_a_thread_receives_exits_without_waiting_for_it(make_queue):
    # The child has no such thread: its exit must not wait FINISH_SECONDS for one.
    mq = make_queue(sysvmq.IPC_PRIVATE)
    parent = run_python(FORKS_WHILE_A_THREAD_RECEIVES, mq.id)
    assert parent.returncode == 0, parent.stderr[-2000:]
    assert parent.stderr == ""
    assert float(parent.stdout) < sysvmq._binding.process.FINISH_SECONDS / 2


#: An application's atexit handler, registered before sysvmq is imported (so it runs after
#: sysvmq's), stops a worker thread that receives with a timeout and joins it.
JOINS_AT_EXIT = """
import atexit, sys, threading, time
stop = threading.Event()
worker = None

@atexit.register
def join_the_worker():
    stop.set()
    started = time.monotonic()
    worker.join(10)
    print("joined" if not worker.is_alive() else "still running", round(time.monotonic() - started, 1))

import sysvmq
mq = sysvmq.MessageQueue.from_id(int(sys.argv[1]))
ready = threading.Event()

def work():
    ready.set()
    while not stop.is_set():
        try:
            mq.receive(timeout=0.5)
        except sysvmq.QueueTimeoutError:
            pass

worker = threading.Thread(target=work, daemon=True)
worker.start()
ready.wait()
"""


def test_a_thread_joined_by_a_later_atexit_handler_ends_at_its_timeout_taking_nothing(mq):
    child = run_python(JOINS_AT_EXIT, mq.id)
    verdict, seconds = child.stdout.split()
    assert (child.returncode, verdict) == (0, "joined"), child.stderr
    assert float(seconds) < 5


def test_the_buffers_an_exit_waits_for_are_read_while_other_threads_make_new_ones():
    # Another thread makes its first receive buffer while the process exits: reading the
    # set of buffers then must neither fail (a set that grows while it is copied) nor miss it.
    from sysvmq._binding import process

    class Buffer:  # stands in for a cdata buffer: the set holds weak references only
        pass

    made, stop = [], threading.Event()

    def make():
        while not stop.is_set() and len(made) < 200_000:
            made.append(Buffer())
            process.watch_buffer(made[-1])

    maker = threading.Thread(target=make)
    maker.start()
    try:
        for _ in range(300):
            process.watched()
    finally:
        stop.set()
        maker.join(30)
    assert {id(b) for b in made} <= {id(b) for b in process.watched()[0]}
    made.clear()
    gc.collect()  # nothing of this test is left for the exit to read
    assert not any(isinstance(b, Buffer) for b in process.watched()[0])


LATE_FIRST_RECEIVE = """
import sys, threading
import sysvmq
from sysvmq._binding import process

msqid = int(sys.argv[1])
listed = process.watched
go, done = threading.Event(), threading.Event()
outcome = []


def late():
    # Its first receive (a handle of its own, so a new buffer) waits for the exit to list
    # the buffers. A daemon: the exit does not join it, and it runs on while atexit
    # handlers do (no thread can be started then, from 3.12 on).
    go.wait()
    try:
        outcome.append(sysvmq.MessageQueue.from_id(msqid).receive(block=False))
    except sysvmq.QueueEmptyError as e:
        outcome.append(type(e).__name__)
    done.set()


def watched():
    buffers = listed()
    go.set()
    done.wait(30)
    print(outcome)
    return buffers


threading.Thread(target=late, daemon=True).start()
process.watched = watched
"""


def test_a_receive_that_starts_after_the_exit_listed_the_buffers_takes_nothing(mq):
    mq.send(b"kept")
    child = run_python(LATE_FIRST_RECEIVE, mq.id)
    assert (child.returncode, child.stdout, child.stderr) == (0, "['QueueEmptyError']\n", "")
    assert mq.receive(block=False) == b"kept"  # in the kernel still, not in a buffer the exit did not wait for
