"""gevent: blocking calls wait in gevent's thread pool, as the README says, and then
other greenlets run, close() from a greenlet wakes them, and messages arrive.

Each story runs in a child Python with ``gevent.monkey.patch_all()`` and a clean
environment; the child prints what it saw as JSON.
"""

import importlib.util
import json
import os
import platform
import subprocess
import sys
import sysconfig

import pytest
from conftest import child_env, run_python

import sysvmq

CHILD = r"""
import glob, json, sys, time
from gevent import monkey
monkey.patch_all()
import gevent
import sysvmq


def until_a_thread_sleeps_in_msgrcv():
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for path in glob.glob("/proc/self/task/*/wchan"):
            try:
                with open(path) as f:
                    if "msgrcv" in f.read():
                        return
            except OSError:
                pass
        gevent.sleep(0.001)
    raise AssertionError("no thread sleeps in msgrcv")


ticks = 0


def ticker():
    global ticks
    while True:
        gevent.sleep(0.01)
        ticks += 1


def timed_out_receive(receive):
    # How many times the ticker ticked, and how long it took, while `receive` timed out.
    before, start = ticks, time.monotonic()
    try:
        receive()
    except sysvmq.QueueTimeoutError:
        return {"ticks": ticks - before, "seconds": time.monotonic() - start}
    raise AssertionError("the receive did not time out")


mq = sysvmq.MessageQueue.from_id(int(sys.argv[1]))
pool = gevent.get_hub().threadpool
# gevent prints every exception a pool call raises, then raises it in the caller too:
# the ones this program expects are no news.
gevent.get_hub().NOT_ERROR += (sysvmq.QueueTimeoutError, sysvmq.QueueClosedError)
gevent.spawn(ticker)
gevent.sleep(0.05)  # the ticker is under way
seen = {}
seen["direct"] = timed_out_receive(lambda: mq.receive(timeout=0.3))
seen["pool"] = timed_out_receive(lambda: pool.apply(mq.receive, kwds={"timeout": 1.0}))

other = sysvmq.MessageQueue.from_id(mq.id)
waiting = pool.spawn(other.receive)
until_a_thread_sleeps_in_msgrcv()
start = time.monotonic()
gevent.spawn(other.close).join()
try:
    waiting.get(timeout=10)
except sysvmq.QueueClosedError:
    seen["closed"] = {"seconds": time.monotonic() - start}

waiting = pool.spawn(mq.receive, 7)
until_a_thread_sleeps_in_msgrcv()
print("waiting", flush=True)
seen["received"] = waiting.get(timeout=30).decode()
print(json.dumps(seen), flush=True)
"""


def need_gevent() -> None:
    """gevent is in the test extra on CPython; on PyPy and free-threaded CPython, which it has
    no wheel for, it is optional. Only the child imports it: monkey-patching belongs to a
    process of its own."""
    if importlib.util.find_spec("gevent") is None:
        if platform.python_implementation() == "PyPy":
            pytest.skip("gevent is not installed (the test extra installs it on CPython only: no PyPy wheel)")
        if sysconfig.get_config_var("Py_GIL_DISABLED"):
            pytest.skip("gevent is not installed (it has no free-threaded wheel)")
        pytest.fail("gevent is not installed: pip install '.[test]'")


def test_blocking_calls_in_gevents_thread_pool_let_greenlets_run_and_close(mq):
    need_gevent()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(mq.id)],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first == "waiting\n", first + child.communicate(timeout=30)[1]
        mq.send(b"from another process", type=7)  # the child waits in a pool thread, this process sends
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    assert err == ""  # nothing printed: the expected errors reached their callers only
    seen = json.loads(out)
    # Called directly, a receive holds the one thread every greenlet shares: no tick.
    assert seen["direct"]["ticks"] <= 1
    # Through the pool, the ticker runs on (100 ticks in a second, without load).
    assert seen["pool"]["ticks"] >= 50 and 0.9 <= seen["pool"]["seconds"] < 5
    assert seen["closed"]["seconds"] < 5
    assert seen["received"] == "from another process"
    assert mq.stats().count == 0
    with pytest.raises(sysvmq.QueueEmptyError):
        mq.receive(block=False)


ASYNCIO_CHILD = r"""
import asyncio, json, sys, time
from gevent import monkey
monkey.patch_all()
import sysvmq

mq = sysvmq.MessageQueue.from_id(int(sys.argv[1]))
seen = {}


async def main():
    start = time.monotonic()
    try:
        await asyncio.wait_for(mq.receive_async(), 0.3)
    except asyncio.TimeoutError:
        seen["timed out"] = time.monotonic() - start
    waiting = asyncio.ensure_future(mq.receive_async(type=3, timeout=30))
    await asyncio.sleep(0.05)  # it most likely waits in its worker by now; taken at once, it passes too
    await mq.send_async(b"hello", type=3)
    seen["received"] = (await waiting).decode()
    other = sysvmq.MessageQueue.from_id(mq.id)
    waiting = asyncio.ensure_future(other.receive_async(type=4))
    await asyncio.sleep(0.05)  # as above: closed before it waits, it fails the same way
    other.close()
    try:
        await asyncio.wait_for(waiting, 10)
    except sysvmq.QueueClosedError:
        seen["closed"] = True


asyncio.run(main())
print(json.dumps(seen), flush=True)
"""


#: AddressSanitizer cannot follow greenlet's stack switches where an exception is thrown into
#: a greenlet (gevent.Timeout, and what patch_all's asyncio does): a CHECK in its __cxa_throw
#: interceptor aborts the child.
UNDER_ASAN = pytest.mark.skipif(
    "libasan" in os.environ.get("LD_PRELOAD", ""),
    reason="AddressSanitizer cannot follow greenlet's stack switches: a CHECK in its __cxa_throw interceptor aborts",
)

TIMEOUT_CHILD = r"""
import glob, sys, time
from gevent import monkey
monkey.patch_all()
import gevent
import sysvmq

mq = sysvmq.MessageQueue.from_id(int(sys.argv[1]))
pool = gevent.get_hub().threadpool
# What docs/async.md warns of: gevent.Timeout ends the greenlet that waits for a pooled call,
# not the call, which waits on in its thread and takes the next message for nobody.
try:
    with gevent.Timeout(0.1):
        pool.apply(mq.receive, (8,))
except gevent.Timeout:
    pass
def a_thread_sleeps_in_msgrcv():
    for path in glob.glob("/proc/self/task/*/wchan"):
        try:
            with open(path) as f:
                if "msgrcv" in f.read():
                    return True
        except OSError:
            pass
    return False

deadline = time.monotonic() + 10
while not a_thread_sleeps_in_msgrcv() and time.monotonic() < deadline:  # the pool thread waits on
    gevent.sleep(0.001)
mq.send(b"for nobody", type=8)
while mq.stats().count and time.monotonic() < deadline:
    gevent.sleep(0.001)
print(mq.stats().count, flush=True)
"""


@UNDER_ASAN
def test_a_gevent_timeout_leaves_the_pooled_receive_taking_the_next_message_for_nobody(mq):
    need_gevent()
    child = run_python(TIMEOUT_CHILD, mq.id, timeout=30)
    assert (child.returncode, child.stdout) == (0, "0\n"), child.stderr


@UNDER_ASAN
def test_async_calls_under_patch_all_wait_in_real_threads(mq):
    # Under patch_all, threading's threads are greenlets: a worker greenlet blocked in
    # msgrcv held the one thread, and the event loop with it, until a message came.
    need_gevent()
    child = run_python(ASYNCIO_CHILD, mq.id, timeout=30)
    assert child.returncode == 0, child.stderr
    seen = json.loads(child.stdout)
    assert 0.25 <= seen["timed out"] < 5
    assert seen["received"] == "hello"
    assert seen["closed"] is True
    assert mq.stats().count == 0
