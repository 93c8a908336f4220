"""A buffer sysvmq reads or writes (a memoryview, a bytearray) is released by the time the
call returns or raises: a failed call whose frame lives on in a traceback cycle must not
hold an export of the caller's buffer. CPython's garbage collector cannot clear a
memoryview that still has one ("memoryview has 1 exported buffer"), and the interpreter
crashes once the cycle is freed.

Each case runs in a child process of its own (a crash is the failure), with a clean
environment.
"""

import queue
import subprocess
import sys
import textwrap

import pytest
from conftest import child_env

import sysvmq

#: What each child runs inside `attempt()`, with `mq` an empty queue, `full` one with no
#: room left and `big` one whose message is larger than a byte; the call must raise `expected`.
CASES = {
    "send, type 0": ("mq.send(memoryview(b'hello'), 0)", "ValueError"),
    "send, bytearray, type 0": ("mq.send(bytearray(b'hello'), 0)", "ValueError"),
    "send, block=False, full": ("full.send(memoryview(b'x' * 64), block=False)", "sysvmq.QueueFullError"),
    "send, timeout, full": ("full.send(memoryview(b'x' * 64), timeout=0.01)", "sysvmq.QueueTimeoutError"),
    "send, flags": ("full.send(memoryview(b'x' * 64), 1, sysvmq.IPC_NOWAIT)", "sysvmq.QueueFullError"),
    "send_many, full": ("full.send_many([memoryview(b'x' * 64)], block=False)", "sysvmq.QueueFullError"),
    "receive_into, timeout": ("mq.receive_into(memoryview(bytearray(64)), timeout=0.01)", "sysvmq.QueueTimeoutError"),
    "receive_into, block=False": ("mq.receive_into(bytearray(64), block=False)", "sysvmq.QueueEmptyError"),
    "receive_into, too small": ("big.receive_into(memoryview(bytearray(1)))", "sysvmq.MessageTooLargeError"),
    "send_async, type 0": ("asyncio.run(mq.send_async(memoryview(b'hello'), 0))", "ValueError"),
    "send_async, timeout, full": (
        "asyncio.run(full.send_async(memoryview(b'x' * 64), timeout=0.01))",
        "sysvmq.QueueTimeoutError",
    ),
    "Queue.put_nowait, full": (
        "sysvmq.Queue.from_id(full.id, serializer=None).put_nowait(bytearray(b'x' * 64))",
        "queue.Full",
    ),
    "Queue.put, timeout, full": (
        "sysvmq.Queue.from_id(full.id, serializer=None).put(memoryview(b'x' * 64), timeout=0.01)",
        "queue.Full",
    ),
}

CHILD = """
import asyncio, gc, queue, sys, sysvmq

mq, full, big = (sysvmq.MessageQueue.from_id(int(msqid)) for msqid in sys.argv[1:])

def attempt():
    mv = None  # the frame that catches the error keeps it, as an application's may
    try:
{call}
    except {expected} as e:
        caught = e
        return
    raise AssertionError("no {expected}")

attempt()
gc.collect()
attempt()
gc.collect()
print("alive")
"""


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_failed_call_leaves_no_export_of_the_callers_buffer(case, make_queue):
    """The queues are the parent's, so that a child that crashes leaves none behind."""
    mq, full, big = (make_queue(sysvmq.IPC_PRIVATE) for _ in range(3))
    full.set(max_bytes=64)
    full.send(b"x" * 64)
    big.send(b"too large for a one-byte buffer")
    call, expected = CASES[case]
    code = CHILD.format(call=textwrap.indent(call, " " * 8), expected=expected)
    child = subprocess.run(
        [sys.executable, "-c", code, str(mq.id), str(full.id), str(big.id)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (child.returncode, child.stdout) == (0, "alive\n"), child.stderr


def test_a_successful_call_releases_the_buffer_it_read_or_wrote(mq):
    """The caller may resize its bytearray right after the call: nothing holds it exported."""
    payload = bytearray(b"sent from a bytearray")
    mq.send(payload)
    payload.extend(b" and grown")  # BufferError while an export lives
    into = bytearray(64)
    assert mq.receive_into(into) == (21, 1)
    into.extend(b"grown")
    view = memoryview(bytearray(b"from a view"))
    mq.send_many([view, view])
    view.release()
    assert mq.receive_many(2) == [b"from a view"] * 2


def test_a_failed_put_leaves_no_export_of_the_callers_buffer(make_queue):
    """The exception of a failed put, and the frames in its traceback, may live on."""
    full = make_queue(sysvmq.IPC_PRIVATE)
    full.set(max_bytes=64)
    full.send(b"x" * 64)
    raw = sysvmq.Queue.from_id(full.id, serializer=None)
    for put in (raw.put_nowait, lambda obj: raw.put(obj, timeout=0.01)):
        payload = bytearray(b"x" * 64)
        with pytest.raises(queue.Full) as caught:
            put(payload)
        payload.extend(b" and grown")  # BufferError while an export lives
        assert caught.value.__traceback__ is not None
