"""asyncio: the event loop never blocks, and cancellation never loses a message."""

import asyncio
import collections
import contextlib
import gc
import os
import random
import subprocess
import sys
import threading
import time
import weakref

import pytest
from conftest import child_env, wait_until, wait_until_waiting

import sysvmq


def run(coro):
    return asyncio.run(coro)


def test_receive_async_waits_without_blocking_the_loop(mq):
    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick_task = asyncio.ensure_future(ticker())
        asyncio.get_running_loop().call_later(0.2, mq.send, b"hello", 3)
        message = await mq.receive_message_async()
        tick_task.cancel()
        return message, ticks

    message, ticks = run(main())
    assert message == sysvmq.Message(3, b"hello")
    assert ticks >= 5


def test_receive_async_takes_a_waiting_message_at_once(mq):
    mq.send(b"ready")
    assert run(mq.receive_async()) == b"ready"


def test_many_concurrent_receivers_each_get_their_type(mq):
    async def main():
        tasks = [asyncio.ensure_future(mq.receive_message_async(t)) for t in range(1, 41)]
        await asyncio.sleep(0.05)
        for t in reversed(range(1, 41)):
            await mq.send_async(b"for %d" % t, type=t)
        return await asyncio.gather(*tasks)

    messages = run(main())
    assert [m.type for m in messages] == list(range(1, 41))
    assert all(m.data == b"for %d" % m.type for m in messages)


def test_send_async_waits_for_room(mq):
    mq.set(max_bytes=4)
    mq.send(b"full")

    async def main():
        task = asyncio.ensure_future(mq.send_async(b"next", type=2))
        await asyncio.sleep(0.1)
        assert not task.done()
        assert await mq.receive_async() == b"full"
        await asyncio.wait_for(task, 5)
        return await mq.receive_async()

    assert run(main()) == b"next"


@pytest.mark.parametrize("timeout", [0, 0.1])
def test_async_timeouts(mq, timeout):
    start = time.monotonic()
    with pytest.raises(sysvmq.QueueTimeoutError):
        run(mq.receive_async(timeout=timeout))
    assert timeout <= time.monotonic() - start < timeout + 1
    mq.set(max_bytes=1)
    mq.send(b"x")
    with pytest.raises(sysvmq.QueueTimeoutError):
        run(mq.send_async(b"y", timeout=timeout))


def test_async_argument_errors_come_before_any_wait(mq):
    with pytest.raises(ValueError):
        run(mq.send_async(b"x", type=0))
    with pytest.raises(TypeError):
        run(mq.receive_async(timeout="1"))
    with pytest.raises(ValueError):
        run(mq.receive_async(0, exclude=True))


def test_a_cancelled_receive_takes_nothing_afterwards(mq):
    async def main():
        task = asyncio.ensure_future(mq.receive_async())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        mq.send(b"after the cancel")
        await asyncio.sleep(0.05)
        return mq.stats().count

    assert run(main()) == 1
    assert mq.receive() == b"after the cancel"


def test_a_message_racing_a_cancel_goes_to_the_next_receive(mq):
    async def main():
        for i in range(50):
            task = asyncio.ensure_future(mq.receive_async(5))
            await asyncio.sleep(0.002)
            mq.send(b"%d" % i, type=5)
            task.cancel()  # races the worker thread, which may already hold the message
            try:
                got = await task
            except asyncio.CancelledError:
                got = await mq.receive_async(5, timeout=5)
            assert got == b"%d" % i
        return mq.stats().count

    assert run(main()) == 0


def test_close_wakes_async_receivers(mq):
    other = sysvmq.MessageQueue.from_id(mq.id)

    async def main():
        task = asyncio.ensure_future(other.receive_async())
        await asyncio.sleep(0.05)
        other.close()
        with pytest.raises(sysvmq.QueueClosedError):
            await asyncio.wait_for(task, 5)

    run(main())


PRODUCER = """
import sys, time, sysvmq
mq = sysvmq.MessageQueue.from_id(int(sys.argv[1]))
sent = 0
while True:
    try:
        mq.receive(99, block=False)  # the consumer's "stop"
        break
    except sysvmq.QueueEmptyError:
        pass
    mq.send(b"%d" % sent, type=1 + sent % 3)
    sent += 1
    time.sleep(0.001)  # slower than the consumer, so that most receives have to wait
print(sent)
"""

CANCELLATIONS = 1000


def test_thousands_of_cancellations_lose_and_duplicate_nothing(mq):
    producer = subprocess.Popen(
        [sys.executable, "-c", PRODUCER, str(mq.id)], stdout=subprocess.PIPE, text=True, env=child_env()
    )
    received = []
    cancellations = 0

    async def receive_or_cancel():
        nonlocal cancellations
        if random.random() < 0.5:
            try:
                received.append(await asyncio.wait_for(mq.receive_async(-3), random.uniform(0, 0.001)))
            except asyncio.TimeoutError:
                cancellations += 1
        else:
            task = asyncio.ensure_future(mq.receive_async(-3))
            await asyncio.sleep(random.uniform(0, 0.001))
            task.cancel()
            try:
                received.append(await task)
            except asyncio.CancelledError:
                cancellations += 1

    async def main():
        deadline = time.monotonic() + 60
        while cancellations < CANCELLATIONS and time.monotonic() < deadline:
            await receive_or_cancel()
        mq.send(b"stop", type=99)
        total = int(await asyncio.get_running_loop().run_in_executor(None, producer.stdout.read))
        while len(received) < total and time.monotonic() < deadline:
            await receive_or_cancel()
        return total

    try:
        total = run(main())
    finally:
        producer.kill() if producer.poll() is None else None
        producer.wait(10)
    numbers = sorted(int(x) for x in received)
    assert numbers == list(range(total)), f"lost {sorted(set(range(total)) - set(numbers))[:10]}"
    assert cancellations >= CANCELLATIONS
    assert mq.stats().count == 0


def test_a_message_that_reaches_a_cancelled_receive_stays_in_the_kernel(mq):
    # The worker sees the message while the event loop is busy; then the call is cancelled.
    # The message was never taken: stats() and peek() see it, and a closed handle has none.
    handle = sysvmq.MessageQueue.from_id(mq.id)
    before = threads_in_msgrcv()

    async def main():
        task = asyncio.ensure_future(handle.receive_async())
        await until(lambda: threads_in_msgrcv() > before)  # the worker waits in the kernel
        mq.send(b"numbered 1")
        until_the_worker_saw_it(before)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    handle.close()
    assert mq.stats().count == 1
    assert mq.peek() == sysvmq.Message(1, b"numbered 1")
    with pytest.raises(sysvmq.QueueClosedError):
        handle.receive(block=False)


def test_short_lived_handles_with_timed_out_receives_lose_nothing(mq):
    sent = 400
    # Paced, so that receives time out while the stream goes on.
    sender = threading.Thread(target=lambda: [mq.send(b"%d" % i) or time.sleep(0.0005) for i in range(sent)])

    async def main():
        got = []
        deadline = time.monotonic() + 30
        while len(got) < sent and time.monotonic() < deadline:
            with sysvmq.MessageQueue.from_id(mq.id) as handle:  # closed, and dropped, after every try
                try:
                    got.append(await asyncio.wait_for(handle.receive_async(), 0.001))
                except asyncio.TimeoutError:
                    pass
        return got

    sender.start()
    try:
        got = run(main())
    finally:
        sender.join(30)
    assert sorted(int(x) for x in got) == list(range(sent))
    assert mq.stats().count == 0


def test_messages_for_receives_of_a_stopped_loop_survive_its_close(mq):
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda loop, context: None)  # each task is destroyed pending, on purpose
    before = threads_in_msgrcv()
    tasks = [loop.create_task(mq.receive_async()) for _ in range(8)]
    loop.run_until_complete(until(lambda: threads_in_msgrcv() > before))  # the receives wait in a worker
    for i in range(8):
        mq.send(b"%d" % i)
    until_the_worker_saw_it(before)  # while the loop is stopped
    loop.close()
    del tasks
    gc.collect()
    assert mq.stats().count == 8
    assert sorted(mq.receive_many(8)) == [b"%d" % i for i in range(8)]


def test_after_a_cancelled_receive_a_fork_delivers_each_message_once(mq):
    before = threads_in_msgrcv()

    async def cancel_with_a_message_in_flight():
        task = asyncio.ensure_future(mq.receive_async())
        await until(lambda: threads_in_msgrcv() > before)
        mq.send(b"only once")
        until_the_worker_saw_it(before)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(cancel_with_a_message_in_flight())
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 3
        try:
            code = 0 if mq.receive(block=False) == b"only once" else 2
        except sysvmq.QueueEmptyError:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    child_got = os.WEXITSTATUS(status) == 0
    try:
        parent_got = mq.receive(block=False) == b"only once"
    except sysvmq.QueueEmptyError:
        parent_got = False
    assert child_got + parent_got == 1


def test_a_zero_length_message_reaches_a_waiting_receive(mq):
    async def main():
        task = asyncio.ensure_future(mq.receive_message_async(4))
        await asyncio.sleep(0.05)
        mq.send(b"", type=4)
        return await asyncio.wait_for(task, 5)

    assert run(main()) == sysvmq.Message(4, b"")
    assert mq.stats().count == 0


def test_a_zero_length_message_seen_by_a_cancelled_receive_is_put_back_at_the_end(mq):
    before = threads_in_msgrcv()

    async def main():
        task = asyncio.ensure_future(mq.receive_async(4))
        await until(lambda: threads_in_msgrcv() > before)
        mq.send(b"", type=4)
        wait_until(  # blocks the loop: the worker has taken it into its zero-byte buffer and put it back
            lambda: threads_in_msgrcv() <= before and mq.stats().count == 1, "the worker never put it back"
        )
        mq.send(b"later", type=4)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert mq.receive_many(5, 4) in ([b"", b"later"], [b"later", b""])
    assert mq.stats().count == 0


NO_THREADS = """
import asyncio, os, resource, sys, time
import sysvmq
os.setgid(65534)
os.setuid(65534)
mq = sysvmq.MessageQueue(sysvmq.IPC_PRIVATE)
try:
    mq.set(max_bytes=4)
    mq.send(b"full")
    resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))  # this process only: no thread can start
    outcomes = []
    for call in (lambda: mq.send_async(b"more", type=2), lambda: mq.receive_async(3)):
        try:
            asyncio.run(call())
            outcomes.append("returned")
        except sysvmq.ResourceLimitError as e:
            outcomes.append("limit" if "threads" in str(e) else str(e))
    mq.receive()  # room again, and a message of type 3 a stale job would eat
    mq.send(b"late", type=3)
    time.sleep(0.3)  # a grace window: a stale job still waiting would take it meanwhile
    print(outcomes, mq.stats().count, mq.receive_message(block=False))
finally:
    mq.destroy()
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="RLIMIT_NPROC binds only an unprivileged user")
def test_an_async_call_whose_thread_cannot_start_fails_and_leaves_nothing_behind():
    out = subprocess.run(
        [sys.executable, "-c", NO_THREADS], capture_output=True, text=True, timeout=30, env=child_env()
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['limit', 'limit'] 1 Message(type=3, data=b'late')"


def test_messages_that_arrive_after_the_loop_closed_stay_in_the_kernel(mq):
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda loop, context: None)  # each task is destroyed pending, on purpose
    before = threads_in_msgrcv()
    tasks = [loop.create_task(mq.receive_async()) for _ in range(4)]
    loop.run_until_complete(until(lambda: threads_in_msgrcv() > before))  # the receives wait in a worker
    loop.close()  # closed while the workers still wait: they find no loop to report to
    del tasks
    gc.collect()
    for i in range(4):
        mq.send(b"%d" % i)
    until_the_worker_saw_it(before)
    assert mq.stats().count == 4


UNREACHABLE_WORKER = """
import asyncio, signal, sys, time
import sysvmq
mq = sysvmq.MessageQueue.from_id(int(sys.argv[1]))

async def main():
    # Workers inherit this thread's mask: every signal blocked. Then the application takes
    # the wake-up signal, so no signal can reach a waiting worker any more.
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    task = asyncio.ensure_future(mq.receive_async(5))
    await asyncio.sleep(0.1)
    signal.signal(sysvmq.wakeup_signal(), lambda s, f: None)
    task.cancel()
    start = time.monotonic()
    try:
        await asyncio.wait_for(task, 5)
    except asyncio.CancelledError:
        print("cancelled", time.monotonic() - start < 2)
    mq.send(b"for type 5", type=5)  # the worker sees it, takes nothing, and reports to nobody
    time.sleep(0.2)  # a grace window: a take by the worker would show in the count
    print(mq.stats().count)

asyncio.run(main())
"""


def test_a_cancel_that_cannot_reach_its_worker_still_ends_and_takes_nothing(mq):
    out = subprocess.run(
        [sys.executable, "-c", UNREACHABLE_WORKER, str(mq.id)],
        capture_output=True,
        text=True,
        timeout=30,
        env=child_env(),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["cancelled", "True", "1"]
    assert mq.receive(5, block=False) == b"for type 5"


def consume_read_only(msqid, write_fd):
    """In a forked child as uid 65534, which may read the queue but not write to it: a
    zero-length message its worker takes cannot be put back, so it is handed over."""
    os.setgid(65534)
    os.setuid(65534)
    mq = sysvmq.MessageQueue.from_id(msqid)

    async def main():
        first = await asyncio.wait_for(mq.receive_message_async(7), 10)
        task = asyncio.ensure_future(mq.receive_message_async(8))
        await until(lambda: threads_in_msgrcv() > 0)
        os.write(write_fd, b"w")  # its worker waits: the parent sends the next one now
        until_the_worker_saw_it(0)  # blocks the loop: the worker has taken it, the coroutine cannot run
        task.cancel()
        second = await task  # cancelled, but the message could not go back: it comes here
        return [first, second]

    os.write(write_fd, repr(asyncio.run(main())).encode())


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only consumer needs another user")
def test_a_zero_length_message_a_read_only_consumer_meets_is_handed_over(mq):
    mq.set(mode=0o644)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            consume_read_only(mq.id, write)
        finally:
            os._exit(0)
    os.close(write)
    wait_until_waiting(pid=pid)  # its worker waits for type 7
    mq.send(b"", type=7)
    assert os.read(read, 1) == b"w"  # its worker waits for type 8
    mq.send(b"", type=8)
    with os.fdopen(read) as f:
        out = f.read()
    os.waitpid(pid, 0)
    assert out == "[Message(type=7, data=b''), Message(type=8, data=b'')]"
    assert mq.stats().count == 0


def test_a_call_cancelled_twice_still_waits_for_its_worker_and_raises_once(mq):
    async def main():
        task = asyncio.ensure_future(mq.receive_async())
        await asyncio.sleep(0.05)  # the worker waits in the kernel
        loop = asyncio.get_running_loop()
        task.cancel()
        for delay in (0, 0.0001, 0.0005):  # land while the first cancel waits for the worker
            loop.call_later(delay, task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await task
        mq.send(b"after both cancels")
        await asyncio.sleep(0.05)
        return mq.stats().count

    assert run(main()) == 1  # the worker had left: it took nothing afterwards


def test_an_async_call_that_must_wait_at_interpreter_shutdown_waits_in_its_own_thread(mq, monkeypatch):
    """CPython 3.12 starts no thread once the interpreter exits, not even in an atexit
    handler ("can't create new thread at interpreter shutdown"); 3.13 once finalization
    began, where a daemon thread's event loop may still run. The call must work (or, in a
    daemon thread, take nothing and wait), not fail with a traceback."""
    from sysvmq import aio

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(aio, "_workers", aio._Workers())  # no idle worker to hand the call to
    monkeypatch.setattr(threading.Thread, "start", refuse)
    with pytest.raises(sysvmq.QueueTimeoutError):
        asyncio.run(mq.receive_async(timeout=0.05))
    mq.set(max_bytes=4)
    mq.send(b"full")
    with pytest.raises(sysvmq.QueueTimeoutError):
        asyncio.run(mq.send_async(b"more", timeout=0.05))
    assert mq.receive_many(5, block=False) == [b"full"]


# ---- one waiting thread per line: many receives of one type, loops closed with receives pending ----

SENDER = """
import sys, sysvmq
mq = sysvmq.MessageQueue.from_id(int(sys.argv[1]))
for i in range(int(sys.argv[2])):
    mq.send(b"%d" % i, 1)
"""

WAITERS = 300


def threads_now():
    """The threads of this process, as the kernel counts them (the C helper thread too)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


def threads_in_msgrcv():
    """How many threads of this process sleep in the kernel's msgrcv."""
    return threads_in("do_msgrcv")


def until_the_worker_saw_it(before):
    """Block the event loop until no more than `before` threads sleep in msgrcv: the worker
    has seen the message, and the coroutine it wakes cannot run yet."""
    wait_until(lambda: threads_in_msgrcv() <= before, "the worker never saw the message")


def threads_in(wchan):
    """How many threads of this process sleep in the kernel function `wchan`."""
    count = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/wchan") as f:
                count += f.read() == wchan
        except FileNotFoundError:  # the thread ended meanwhile
            pass
    return count


def start_sender(mq, count):
    return subprocess.Popen([sys.executable, "-c", SENDER, str(mq.id), str(count)], env=child_env())


def assert_a_stream_survived_cancelled_heads(mq, received, total, cancelled, most_in_kernel):
    assert sorted(int(x) for x in received) == list(range(total))  # nothing lost, nothing twice
    assert cancelled >= 300
    assert most_in_kernel <= 1  # 20 receives of one type: one thread waits for them
    assert mq.stats().count == 0


async def until(condition, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the state was not reached in time"
        await asyncio.sleep(0.001)


def test_hundreds_of_receives_of_one_type_share_one_thread_and_are_served_in_order(mq):
    baseline = threads_now()
    got = []

    async def receiver(i):
        got.append((i, await mq.receive_async(1)))

    async def main():
        tasks = [asyncio.ensure_future(receiver(i)) for i in range(WAITERS)]
        await asyncio.sleep(0)  # every task runs to its wait, in order
        await until(lambda: threads_in_msgrcv() >= 1)
        waiting = threads_now()
        sender = start_sender(mq, WAITERS)
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
        finally:
            sender.wait(30)
        return waiting

    waiting = run(main())
    assert waiting <= baseline + 3, f"{waiting - baseline} more threads for {WAITERS} waiting receives"
    assert got == [(i, b"%d" % i) for i in range(WAITERS)]  # each once, in the order they waited
    assert mq.stats().count == 0


def test_cancelling_the_head_of_the_line_while_messages_stream_loses_nothing(mq):
    producer = subprocess.Popen(
        [sys.executable, "-c", PRODUCER, str(mq.id)], stdout=subprocess.PIPE, text=True, env=child_env()
    )
    received = []

    async def receiver():
        received.append(await mq.receive_async(-3))

    async def main():
        line = collections.deque(asyncio.ensure_future(receiver()) for _ in range(20))
        cancelled, most_in_kernel = 0, 0
        deadline = time.monotonic() + 60
        while cancelled < 300 and time.monotonic() < deadline:
            await asyncio.sleep(random.uniform(0, 0.002))
            # Those served meanwhile have left the line: the oldest still waiting is its head.
            line = collections.deque(task for task in line if not task.done())
            if not line:  # every one was served: a new line forms while the next sleep lasts
                line.extend(asyncio.ensure_future(receiver()) for _ in range(20))
                continue
            head = line.popleft()
            head.cancel()
            try:
                await head
            except asyncio.CancelledError:
                cancelled += 1
            line = collections.deque(task for task in line if not task.done())
            line.extend(asyncio.ensure_future(receiver()) for _ in range(20 - len(line)))
            most_in_kernel = max(most_in_kernel, threads_in_msgrcv())
        mq.send(b"stop", type=99)
        total = int(await asyncio.get_running_loop().run_in_executor(None, producer.stdout.read))
        await until(lambda: len(received) >= total, 30)
        for task in line:
            task.cancel()
        await asyncio.gather(*line, return_exceptions=True)
        return total, cancelled, most_in_kernel

    try:
        total, cancelled, most_in_kernel = run(main())
    finally:
        producer.kill() if producer.poll() is None else None
        producer.wait(10)
    assert_a_stream_survived_cancelled_heads(mq, received, total, cancelled, most_in_kernel)


def test_the_workers_of_closed_loops_end_without_a_message(mq):
    loops = []
    for _ in range(5):
        before = threads_in_msgrcv()
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(lambda loop, context: None)  # each task is destroyed pending, on purpose
        tasks = [loop.create_task(mq.receive_async()) for _ in range(8)]
        loop.run_until_complete(until(lambda before=before: threads_in_msgrcv() > before))  # a worker waits
        loop.close()  # with every receive pending, none cancelled
        loops.append((loop, tasks))  # kept: the workers must not need the garbage collector
    start = time.monotonic()
    while threads_in_msgrcv() and time.monotonic() - start < 5:
        time.sleep(0.01)
    assert threads_in_msgrcv() == 0
    for i in range(4):
        mq.send(b"%d" % i)
    assert mq.stats().count == 4  # the workers took nothing on their way out


def test_the_send_of_a_closed_loop_ends_without_sending(mq, monkeypatch):
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    mq.set(max_bytes=8)
    mq.send(b"12345678")  # full
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda loop, context: None)  # the task is destroyed pending, on purpose
    task = loop.create_task(mq.send_async(b"late", type=2))
    loop.run_until_complete(until(lambda: threads_in("do_msgsnd") > 0))  # its worker waits for room
    loop.close()  # with the send pending, not cancelled
    start = time.monotonic()
    while threads_in("do_msgsnd") and time.monotonic() - start < 5:
        time.sleep(0.01)
    assert threads_in("do_msgsnd") == 0  # it waited for room for ever, for a loop long gone
    assert mq.receive() == b"12345678"  # room at last: nothing comes to take it
    assert mq.stats().count == 0
    assert not task.done()  # kept: the worker must not need the garbage collector
    coroutine = task.get_coro()
    # What collecting it does (a tracer such as coverage's may keep it from the collector):
    # GeneratorExit where it awaits its worker. It must neither wait for the ended worker
    # (RuntimeError: coroutine ignored GeneratorExit) nor complain.
    coroutine.close()
    assert coroutine.cr_frame is None
    del task, coroutine
    gc.collect()
    assert unraisable == []


def test_an_idle_worker_keeps_nothing_of_its_calls(mq, monkeypatch):
    # Its event loop, coroutine and data: a worker lives on for seconds after its last call.
    monkeypatch.setattr(sysvmq.aio, "submit", sysvmq.aio._Workers().submit)  # a new thread, then it again
    mq.set(max_bytes=4)
    mq.send(b"full")

    async def main():
        task = asyncio.ensure_future(mq.send_async(b"next", type=2))
        await until(lambda: threads_in("do_msgsnd") > 0)
        assert mq.receive() == b"full"
        await asyncio.wait_for(task, 5)
        assert mq.receive() == b"next"
        mq.send(b"full")

    for _ in range(2):
        loop = asyncio.new_event_loop()
        loop.run_until_complete(main())
        loop.close()
        gone = weakref.ref(loop)
        del loop
        for _ in range(3):
            gc.collect()  # PyPy frees objects with finalizers over several collections
        assert gone() is None


def test_a_send_that_waits_long_keeps_waiting_and_keeps_its_own_timeout(mq):
    # Its worker wakes every aio.ALIVE_SECONDS to look for its loop, and waits on.
    mq.set(max_bytes=4)
    mq.send(b"full")

    async def main():
        start = time.monotonic()
        with pytest.raises(sysvmq.QueueTimeoutError, match=r"timeout of 1\.3 s"):
            await mq.send_async(b"late", timeout=1.3)
        assert 1.3 <= time.monotonic() - start < 3
        task = asyncio.ensure_future(mq.send_async(b"next", type=2))
        await until(lambda: time.monotonic() - start > 1.3 + 3 * sysvmq.aio.ALIVE_SECONDS)
        assert not task.done()
        assert mq.receive() == b"full"
        await asyncio.wait_for(task, 5)

    run(main())
    assert mq.receive(block=False) == b"next"


def stopping_its_worker(task):
    """Whether `task` waits in sysvmq.aio.stop: until its worker has left the kernel."""
    coroutine = task.get_coro()
    while coroutine is not None and hasattr(coroutine, "cr_code"):
        if coroutine.cr_code is sysvmq.aio.stop.__code__:
            return True
        coroutine = coroutine.cr_await
    return False


def test_a_cancellation_that_comes_as_a_receive_times_out_is_not_lost(mq):
    async def consume():
        while True:  # an ordinary consumer: a timeout is no reason to stop
            with contextlib.suppress(sysvmq.QueueTimeoutError):
                await mq.receive_async(timeout=0.02)

    async def main():
        caught = 0
        for _ in range(5):
            consumer = asyncio.ensure_future(consume())
            # Timed out, it stops its worker; it is cancelled right then, before the worker has
            # left. Looked for at every turn of the loop: the worker leaves within one or two.
            deadline = time.monotonic() + 10
            while not stopping_its_worker(consumer):
                assert time.monotonic() < deadline, "the consumer never stopped its worker"
                await asyncio.sleep(0)
            consumer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(consumer, 5)  # it went on receiving: the cancellation was lost
            caught += 1
        return caught

    assert run(main()) == 5


def test_each_receive_in_line_keeps_its_own_timeout(mq):
    async def main():
        soon = asyncio.ensure_future(mq.receive_async(2, timeout=0.1))
        forever = asyncio.ensure_future(mq.receive_async(2))
        later = asyncio.ensure_future(mq.receive_async(2, timeout=0.4))
        with pytest.raises(sysvmq.QueueTimeoutError):
            await asyncio.wait_for(soon, 5)
        assert not forever.done() and not later.done()
        with pytest.raises(sysvmq.QueueTimeoutError):
            await asyncio.wait_for(later, 5)
        assert not forever.done()
        mq.send(b"for the one left", type=2)
        return await asyncio.wait_for(forever, 5)

    start = time.monotonic()
    assert run(main()) == b"for the one left"
    assert time.monotonic() - start < 3
    assert mq.stats().count == 0


def test_close_fails_every_receive_in_line(mq):
    other = sysvmq.MessageQueue.from_id(mq.id)

    async def main():
        tasks = [asyncio.ensure_future(other.receive_async(3)) for _ in range(50)]
        await asyncio.sleep(0)
        await until(lambda: threads_in_msgrcv() >= 1)
        other.close()
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)

    outcomes = run(main())
    assert all(isinstance(outcome, sysvmq.QueueClosedError) for outcome in outcomes), outcomes
    # Each its own: one object raised in fifty coroutines would carry all their tracebacks.
    assert len({id(outcome) for outcome in outcomes}) == len(outcomes)
    assert {str(outcome) for outcome in outcomes} == {str(outcomes[0])}


def test_a_receive_cancelled_after_its_turn_came_hands_the_turn_on(mq):
    async def main():
        first = asyncio.ensure_future(mq.receive_async(6))
        second = asyncio.ensure_future(mq.receive_async(6))
        await asyncio.sleep(0)
        await until(lambda: threads_in_msgrcv() >= 1)
        mq.send(b"one message", type=6)
        until_the_worker_saw_it(0)  # blocks the loop: the worker has seen the message and wakes the head...
        first.cancel()  # ...which is cancelled before it could take it
        with pytest.raises(asyncio.CancelledError):
            await first
        return await asyncio.wait_for(second, 5)

    assert run(main()) == b"one message"
    assert mq.stats().count == 0


def test_a_receive_with_no_time_to_wait_takes_a_message_that_is_there_though_a_line_waits(mq):
    async def main():
        waiting = asyncio.ensure_future(mq.receive_async(8))
        await asyncio.sleep(0)
        await until(lambda: threads_in_msgrcv() >= 1)
        mq.send(b"one", type=8)
        mq.send(b"two", type=8)
        at_once = await mq.receive_async(8, timeout=0)  # as receive(timeout=0): no wait, not nothing
        return at_once, await asyncio.wait_for(waiting, 5)

    assert sorted(run(main())) == [b"one", b"two"]
    assert mq.stats().count == 0
