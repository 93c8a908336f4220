"""asyncio: the event loop never blocks, and cancellation never loses a message."""

import asyncio
import random
import subprocess
import sys
import time

import pytest

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
    producer = subprocess.Popen([sys.executable, "-c", PRODUCER, str(mq.id)], stdout=subprocess.PIPE, text=True)
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
