"""Many threads making their first calls at once.

PyPy's cffi realizes a C type at its first use into a cache without a lock: threads whose
first uses of different types meet may be handed each other's type and keep it. sysvmq
realizes every type it uses at import (sysvmq._binding.c.CDECLS), while the import lock
keeps other threads out.
"""

import pathlib
import re

from conftest import run_python

import sysvmq
from sysvmq._binding import c as _ctypes

PACKAGE = pathlib.Path(sysvmq.__file__).parent
#: A C type spelt at a call that allocates, casts or views: what must be realized early.
TYPE_USE = re.compile(r"""(?:ffi\.(?:new|cast|from_buffer|typeof)|_alloc)\(\s*"([^"]+)\"""")


def test_every_c_type_the_package_allocates_is_realized_at_import():
    used = {match for path in PACKAGE.rglob("*.py") for match in TYPE_USE.findall(path.read_text())}
    assert used, "the pattern finds the package's allocations"
    assert used <= set(_ctypes.CDECLS), f"realize these in sysvmq._binding.c.CDECLS: {used - set(_ctypes.CDECLS)}"


#: A fresh process whose 16 threads make their first calls at one moment, each of another
#: kind (so that their first uses of different C types meet), then trade 400 messages.
RACE = """
import asyncio, sys, threading, time
sys.setswitchinterval(1e-6)
import sysvmq

mq = sysvmq.MessageQueue.from_id(int(sys.argv[1]))
gate = threading.Barrier(16)
errors, got = [], []

def first_call(kind):
    if kind == 0:
        mq.send_many([b"a", b"bb"], 9)
    elif kind == 1:
        mq.stats(), sysvmq.limits(), sysvmq.queues()
    elif kind == 2:
        try:
            mq.receive_many(4, 10, block=False)
        except sysvmq.QueueEmptyError:
            pass
    elif kind == 3:
        async def wait():
            await asyncio.wait_for(mq.receive_async(10), 0.01)
        try:
            asyncio.run(wait())
        except asyncio.TimeoutError:
            pass

def sender(i):
    gate.wait()
    first_call(i % 4)
    for j in range(50):
        mq.send(b"%d-%d" % (i, j), 1 + i, timeout=30)

def receiver(i):
    gate.wait()
    first_call(i % 4)
    end = time.monotonic() + 30
    while len(got) < 400 and time.monotonic() < end:
        try:
            got.append(mq.receive_message(-8, timeout=0.5))
        except sysvmq.QueueTimeoutError:
            pass

def run(role, i):
    try:
        role(i)
    except BaseException as e:
        errors.append(repr(e))

threads = [threading.Thread(target=run, args=(role, i)) for role in (sender, receiver) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join(60)
print(len(got), len(set(got)), sorted(mq.receive_many(10, 9, block=False)), errors[:3])
"""


def test_threads_racing_their_first_calls_in_fresh_processes(make_queue):
    expected = "400 400 [b'a', b'a', b'a', b'a', b'bb', b'bb', b'bb', b'bb'] []"
    for _ in range(12):
        mq = make_queue(sysvmq.IPC_PRIVATE)
        child = run_python(RACE, mq.id, timeout=120)
        assert (child.returncode, child.stdout.strip()) == (0, expected), child.stderr[-2000:]
