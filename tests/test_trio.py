"""trio and anyio: the async calls under trio's cancel scopes lose and double nothing."""

import collections
import os
import random
import subprocess
import sys
import threading
import time

import anyio
import pytest
import trio
import trio.testing
from conftest import child_env
from test_async import (
    NO_THREADS,
    PRODUCER,
    WAITERS,
    assert_a_stream_survived_cancelled_heads,
    start_sender,
    threads_in_msgrcv,
    threads_now,
    until_the_worker_saw_it,
)

import sysvmq


def run(async_fn, *args):
    return trio.run(async_fn, *args)


def send_later(mq, delay, *args):
    timer = threading.Timer(delay, mq.send, args)
    timer.start()
    return timer


def test_receive_waits_without_blocking_the_run(mq):
    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await trio.sleep(0.01)
                ticks += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            send_later(mq, 0.2, b"hello", 3)
            with trio.fail_after(5):
                message = await mq.receive_message_async()
            nursery.cancel_scope.cancel()
        return message, ticks

    message, ticks = run(main)
    assert message == sysvmq.Message(3, b"hello")
    assert ticks >= 5


def test_a_waiting_message_is_taken_at_once_and_send_need_not_wait(mq):
    async def main():
        await mq.send_async(b"ready", type=2)
        return await mq.receive_message_async()

    assert run(main) == sysvmq.Message(2, b"ready")


def test_every_call_is_a_checkpoint_that_touches_nothing_when_cancelled(mq):
    mq.send(b"waiting")

    async def main():
        with trio.CancelScope() as scope:
            scope.cancel()
            await mq.receive_async()  # a message is there: cancelled all the same, before taking it
        with trio.CancelScope() as again:
            again.cancel()
            await mq.send_async(b"never")
        return scope.cancelled_caught, again.cancelled_caught

    assert run(main) == (True, True)
    assert mq.receive_many(5, block=False) == [b"waiting"]


def test_a_cancelled_receive_takes_nothing_afterwards(mq):
    async def main():
        with trio.move_on_after(0.05):
            await mq.receive_async()
        mq.send(b"after the cancel")
        await trio.sleep(0.05)
        return mq.stats().count

    assert run(main) == 1
    assert mq.receive() == b"after the cancel"


async def until_in_msgrcv(before):
    """Until more than `before` threads sleep in msgrcv: the worker waits in the kernel."""
    with trio.fail_after(10):
        while threads_in_msgrcv() <= before:
            await trio.sleep(0.001)


def test_a_message_that_reaches_a_cancelled_receive_stays_in_the_kernel(mq):
    handle = sysvmq.MessageQueue.from_id(mq.id)
    before = threads_in_msgrcv()

    async def main():
        with trio.CancelScope() as scope:

            async def cancel_while_the_run_is_busy():
                await until_in_msgrcv(before)  # the worker waits in the kernel
                mq.send(b"numbered 1")
                until_the_worker_saw_it(before)  # blocks the run: the receive cannot go on
                scope.cancel()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(cancel_while_the_run_is_busy)
                await handle.receive_async()
        return scope.cancelled_caught

    assert run(main)
    handle.close()
    assert mq.stats().count == 1
    assert mq.peek() == sysvmq.Message(1, b"numbered 1")


def test_a_message_racing_a_cancel_goes_to_the_next_receive(mq):
    async def main():
        for i in range(50):
            got = None
            with trio.CancelScope() as scope:

                async def send_then_cancel(data, scope):
                    await trio.sleep(0.002)
                    mq.send(data, type=5)
                    scope.cancel()  # races the worker, which may have seen the message

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(send_then_cancel, b"%d" % i, scope)
                    got = await mq.receive_async(5)
            if got is None:
                with trio.fail_after(5):
                    got = await mq.receive_async(5)
            assert got == b"%d" % i
        return mq.stats().count

    assert run(main) == 0


CANCELLATIONS = 600


def cancel_from_a_thread(trio_token, scope):
    try:
        trio_token.run_sync_soon(scope.cancel)
    except trio.RunFinishedError:
        pass  # the last timer may fire after the run: that scope is long gone


def test_hundreds_of_cancel_scopes_lose_and_duplicate_nothing(mq):
    producer = subprocess.Popen(
        [sys.executable, "-c", PRODUCER, str(mq.id)], env=child_env(), stdout=subprocess.PIPE, text=True
    )
    received = []
    cancellations = {"move_on_after": 0, "scope.cancel": 0, "nursery": 0}

    async def receive_or_cancel():
        how = random.choice(list(cancellations))
        delay = random.uniform(0, 0.001)
        if how == "move_on_after":
            with trio.move_on_after(delay) as scope:
                received.append(await mq.receive_async(-3))
        elif how == "scope.cancel":
            with trio.CancelScope() as scope:  # cancelled from another thread
                threading.Timer(delay, cancel_from_a_thread, (trio.lowlevel.current_trio_token(), scope)).start()
                received.append(await mq.receive_async(-3))
        else:
            async with trio.open_nursery() as nursery:
                scope = nursery.cancel_scope

                async def receive():
                    received.append(await mq.receive_async(-3))

                nursery.start_soon(receive)
                await trio.sleep(delay)
                scope.cancel()
        if scope.cancelled_caught:
            cancellations[how] += 1

    async def main():
        deadline = time.monotonic() + 60
        while sum(cancellations.values()) < CANCELLATIONS and time.monotonic() < deadline:
            await receive_or_cancel()
        mq.send(b"stop", type=99)
        total = int(await trio.to_thread.run_sync(producer.stdout.read))
        while len(received) < total and time.monotonic() < deadline:
            await receive_or_cancel()
        return total

    try:
        total = run(main)
    finally:
        producer.kill() if producer.poll() is None else None
        producer.wait(10)
    numbers = sorted(int(x) for x in received)
    assert numbers == list(range(total)), f"lost {sorted(set(range(total)) - set(numbers))[:10]}"
    assert sum(cancellations.values()) >= CANCELLATIONS
    assert all(cancellations.values()), cancellations
    assert mq.stats().count == 0


def test_send_async_waits_for_room_and_a_cancelled_one_sends_nothing(mq):
    mq.set(max_bytes=4)
    mq.send(b"full")

    async def main():
        with trio.move_on_after(0.1) as scope:
            await mq.send_async(b"lost", type=3)  # waits for room in a worker, then is cancelled
        assert scope.cancelled_caught
        async with trio.open_nursery() as nursery:
            nursery.start_soon(mq.send_async, b"next", 2)
            await trio.sleep(0.1)
            assert await mq.receive_async() == b"full"
        with trio.fail_after(5):
            return await mq.receive_async()

    assert run(main) == b"next"
    time.sleep(0.05)  # a grace window: the cancelled send, were it still to go, would show in the count
    assert mq.stats().count == 0  # the cancelled send never went


def test_timeouts_under_trio(mq):
    start = time.monotonic()
    with pytest.raises(sysvmq.QueueTimeoutError):
        run(lambda: mq.receive_async(timeout=0.1))
    assert 0.1 <= time.monotonic() - start < 1.1


def test_close_wakes_receivers_in_the_run(mq):
    other = sysvmq.MessageQueue.from_id(mq.id)

    async def main():
        async def close_soon():
            await trio.sleep(0.05)
            other.close()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(close_soon)
            with trio.fail_after(5), pytest.raises(sysvmq.QueueClosedError):
                await other.receive_async()

    run(main)


def test_messages_for_receives_of_a_run_that_failed_stay_in_the_kernel(mq):
    async def main():
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(mq.receive_async)
            await trio.sleep(0.1)  # every receive waits in a worker
            raise KeyError("the application fails")

    with pytest.raises(BaseException) as failure:  # a KeyError, in an ExceptionGroup on newer trio
        run(main)
    assert "the application fails" in repr(failure.value) or isinstance(failure.value, KeyError)
    for i in range(8):
        mq.send(b"%d" % i)
    time.sleep(0.2)  # a grace window: a take by a worker of the failed run would show in the count
    assert mq.stats().count == 8


UNREACHABLE_WORKER = """
import signal, sys, time, trio
import sysvmq
mq = sysvmq.MessageQueue.from_id(int(sys.argv[1]))
wakeup = sysvmq.wakeup_signal()

async def main():
    # The worker inherits this thread's mask: every signal blocked but the wake-up signal.
    # Once it waits, the application takes that signal: nothing can wake the worker now.
    signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.valid_signals()) - {wakeup})
    with trio.move_on_after(0.2) as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(mq.receive_async, 5)
            await trio.sleep(0.1)
            signal.signal(wakeup, lambda s, f: None)
    print("cancelled", scope.cancelled_caught)

start = time.monotonic()
trio.run(main)
print("ended", time.monotonic() - start < 2)
mq.send(b"for type 5", type=5)  # wakes the worker after the run: it takes nothing, reports to nobody
time.sleep(0.2)  # a grace window: a take by the worker would show in the count
print(mq.stats().count)
"""


def test_a_run_that_ends_while_its_worker_still_waits_loses_nothing(mq):
    out = subprocess.run(
        [sys.executable, "-c", UNREACHABLE_WORKER, str(mq.id)],
        capture_output=True,
        text=True,
        timeout=30,
        env=child_env(),
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # the worker found the run over and said nothing: no thread died
    assert out.stdout.split() == ["cancelled", "True", "ended", "True", "1"]
    assert mq.receive(5, block=False) == b"for type 5"


def test_after_a_cancelled_receive_a_fork_delivers_each_message_once(mq):
    before = threads_in_msgrcv()

    async def cancel_with_a_message_in_flight():
        with trio.CancelScope() as scope:

            async def cancel_later():
                await until_in_msgrcv(before)
                mq.send(b"only once")
                until_the_worker_saw_it(before)
                scope.cancel()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(cancel_later)
                await mq.receive_async()
        assert scope.cancelled_caught

    run(cancel_with_a_message_in_flight)
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


@pytest.mark.skipif(os.geteuid() != 0, reason="RLIMIT_NPROC binds only an unprivileged user")
def test_a_call_whose_thread_cannot_start_fails_under_trio_and_leaves_nothing_behind():
    code = NO_THREADS.replace("import asyncio,", "import trio,").replace("asyncio.run(call())", "trio.run(call)")
    assert "trio.run(call)" in code
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=child_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['limit', 'limit'] 1 Message(type=3, data=b'late')"


def test_outside_any_event_loop_a_wait_says_what_it_needs(mq):
    coro = mq.receive_async()
    with pytest.raises(RuntimeError, match="asyncio or trio"):
        coro.send(None)
    assert mq.stats().count == 0


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_anyio_cancel_scopes_lose_and_duplicate_nothing(mq, backend):
    rounds = 200
    # Paced, so that receives time out while the stream goes on.
    sender = threading.Thread(target=lambda: [mq.send(b"%d" % i) or time.sleep(0.0005) for i in range(rounds)])
    received = []

    async def main():
        cancelled = 0
        deadline = time.monotonic() + 30
        while len(received) < rounds and time.monotonic() < deadline:
            with anyio.move_on_after(random.uniform(0, 0.001)) as scope:
                received.append(await mq.receive_async())
            cancelled += scope.cancelled_caught
        if backend == "trio":  # every call a checkpoint; on asyncio, one that need not wait does not yield
            with anyio.CancelScope() as scope:
                scope.cancel()
                await mq.send_async(b"never")
        return cancelled

    sender.start()
    try:
        cancelled = anyio.run(main, backend=backend)
    finally:
        sender.join(30)
    assert sorted(int(x) for x in received) == list(range(rounds))
    assert cancelled > 0
    assert mq.stats().count == 0


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_anyio_send_async_waits_for_room(mq, backend):
    mq.set(max_bytes=4)
    mq.send(b"full")

    async def main():
        async with anyio.create_task_group() as group:
            group.start_soon(mq.send_async, b"next", 2)
            await anyio.sleep(0.1)
            assert mq.stats().count == 1
            assert await mq.receive_async() == b"full"
        with anyio.fail_after(5):
            return await mq.receive_message_async()

    assert anyio.run(main, backend=backend) == sysvmq.Message(2, b"next")


# ---- one waiting thread per line: many receives of one type, runs that end with a worker unreachable ----


def test_hundreds_of_receives_of_one_type_share_one_thread_and_are_served_in_order(mq):
    baseline = threads_now()
    got = []

    async def receiver(i):
        got.append((i, await mq.receive_async(1)))

    async def main():
        async with trio.open_nursery() as nursery:
            for i in range(WAITERS):
                nursery.start_soon(receiver, i)
                await trio.testing.wait_all_tasks_blocked()  # receiver i waits in line before i + 1 comes
            while threads_in_msgrcv() < 1:
                await trio.sleep(0.001)
            waiting = threads_now()
            sender = start_sender(mq, WAITERS)
            try:
                with trio.fail_after(30):
                    while len(got) < WAITERS:
                        await trio.sleep(0.01)
            finally:
                sender.wait(30)
        return waiting

    waiting = run(main)
    assert waiting <= baseline + 3, f"{waiting - baseline} more threads for {WAITERS} waiting receives"
    assert got == [(i, b"%d" % i) for i in range(WAITERS)]  # each once, in the order they waited
    assert mq.stats().count == 0


def test_cancelling_the_head_of_the_line_while_messages_stream_loses_nothing(mq):
    producer = subprocess.Popen(
        [sys.executable, "-c", PRODUCER, str(mq.id)], env=child_env(), stdout=subprocess.PIPE, text=True
    )
    received = []
    finished = set()

    async def receiver(scope):
        with scope:
            received.append(await mq.receive_async(-3))
        finished.add(scope)

    async def main():
        line, heads = collections.deque(), []
        most_in_kernel = 0
        async with trio.open_nursery() as nursery:

            async def join_the_line():
                line.append(trio.CancelScope())
                nursery.start_soon(receiver, line[-1])
                await trio.testing.wait_all_tasks_blocked()  # it waits in line before the next comes

            for _ in range(20):
                await join_the_line()
            deadline = time.monotonic() + 60
            while sum(scope.cancelled_caught for scope in heads) < 300 and time.monotonic() < deadline:
                await trio.sleep(random.uniform(0, 0.002))
                # Those served meanwhile have left the line: the oldest still waiting is its head.
                line = collections.deque(scope for scope in line if scope not in finished)
                while not line:  # every one was served
                    await join_the_line()
                heads.append(line.popleft())
                heads[-1].cancel()
                await trio.testing.wait_all_tasks_blocked()
                line = collections.deque(scope for scope in line if scope not in finished)
                while len(line) < 20:
                    await join_the_line()
                most_in_kernel = max(most_in_kernel, threads_in_msgrcv())
            mq.send(b"stop", type=99)
            total = int(await trio.to_thread.run_sync(producer.stdout.read))
            with trio.fail_after(30):
                while len(received) < total:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
        return total, sum(scope.cancelled_caught for scope in heads), most_in_kernel

    try:
        total, cancelled, most_in_kernel = run(main)
    finally:
        producer.kill() if producer.poll() is None else None
        producer.wait(10)
    assert_a_stream_survived_cancelled_heads(mq, received, total, cancelled, most_in_kernel)


def test_the_workers_of_runs_that_failed_with_receives_pending_end_without_a_message(mq):
    async def main():
        async with trio.open_nursery() as nursery:
            before = threads_in_msgrcv()
            for _ in range(8):
                nursery.start_soon(mq.receive_async)
            while threads_in_msgrcv() <= before:  # a worker waits in the kernel
                await trio.sleep(0.001)
            raise KeyError("the application fails")

    for _ in range(5):
        with pytest.raises(BaseException) as failure:  # a KeyError, in an ExceptionGroup on newer trio
            run(main)
        assert "the application fails" in repr(failure.value) or isinstance(failure.value, KeyError)
    start = time.monotonic()
    while threads_in_msgrcv() and time.monotonic() - start < 5:
        time.sleep(0.01)
    assert threads_in_msgrcv() == 0
    for i in range(4):
        mq.send(b"%d" % i)
    assert mq.stats().count == 4  # the workers took nothing on their way out


def test_each_receive_in_line_keeps_its_own_timeout(mq):
    outcomes = {}

    async def receive(name, timeout):
        try:
            outcomes[name] = await mq.receive_async(2, timeout=timeout)
        except sysvmq.QueueTimeoutError:
            outcomes[name] = "timed out"

    async def main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive, "soon", 0.1)
            nursery.start_soon(receive, "forever", None)
            nursery.start_soon(receive, "later", 0.4)
            with trio.fail_after(5):
                while "later" not in outcomes:
                    await trio.sleep(0.01)
            assert outcomes == {"soon": "timed out", "later": "timed out"}
            mq.send(b"for the one left", type=2)

    start = time.monotonic()
    run(main)
    assert outcomes["forever"] == b"for the one left"
    assert time.monotonic() - start < 3
    assert mq.stats().count == 0


def test_close_fails_every_receive_in_line(mq):
    other = sysvmq.MessageQueue.from_id(mq.id)
    outcomes = []

    async def receive():
        try:
            await other.receive_async(3)
        except sysvmq.QueueClosedError as error:
            outcomes.append(error)

    async def main():
        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(receive)
            await trio.testing.wait_all_tasks_blocked()
            while threads_in_msgrcv() < 1:
                await trio.sleep(0.001)
            other.close()
            with trio.fail_after(5):
                while len(outcomes) < 50:
                    await trio.sleep(0.01)

    run(main)
    assert len(outcomes) == 50


def test_a_receive_cancelled_when_its_turn_comes_loses_nothing(mq):
    got = []

    async def receive(scope):
        with scope:
            got.append(await mq.receive_async(6))

    async def main():
        first, second = trio.CancelScope(), trio.CancelScope()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive, first)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(receive, second)
            await trio.testing.wait_all_tasks_blocked()
            while threads_in_msgrcv() < 1:
                await trio.sleep(0.001)
            mq.send(b"one message", type=6)
            until_the_worker_saw_it(0)  # blocks the run: the worker has seen the message and wakes the head...
            first.cancel()  # ...which is cancelled as its turn comes
            with trio.fail_after(5):
                while not got:
                    await trio.sleep(0.01)
            second.cancel()

    run(main)
    assert got == [b"one message"]
    assert mq.stats().count == 0
