"""for and async for over a queue: each step takes one message, and close() ends the loop."""

import asyncio
import signal
import subprocess
import sys
import threading
import time

import pytest
import trio
from conftest import child_env, wait_until_waiting

import sysvmq


def close_when(event, handle, within=5.0):
    """Close `handle` from another thread once `event` is set and the calling thread waits
    in msgrcv again: the close must wake the loop there."""
    native_id = threading.get_native_id()

    def closer():
        try:
            if event.wait(within):
                wait_until_waiting(native_id, within=within)
        finally:
            handle.close()

    thread = threading.Thread(target=closer)
    thread.start()
    return thread


def test_for_yields_every_message_and_ends_when_another_thread_closes(mq):
    for i in range(1, 4):
        mq.send(b"%d" % i, type=i)
    handle = sysvmq.MessageQueue.from_id(mq.id)
    three = threading.Event()
    closer = close_when(three, handle)
    got = []
    start = time.monotonic()
    for message in handle:
        got.append(message)
        if len(got) == 3:
            three.set()
    closer.join(5)
    assert got == [sysvmq.Message(i, b"%d" % i) for i in range(1, 4)]
    assert time.monotonic() - start < 5
    assert handle.closed


def test_a_closed_handle_yields_nothing(mq):
    mq.send(b"stays")
    handle = sysvmq.MessageQueue.from_id(mq.id)
    handle.close()
    assert list(handle) == []
    assert mq.stats().count == 1


def test_closing_from_the_loop_body_ends_the_loop(mq):
    mq.send_many([b"a", b"b"])
    got = []
    for message in mq:
        got.append(message.data)
        mq.close()
    assert got == [b"a"]
    assert sysvmq.MessageQueue.from_id(mq.id).stats().count == 1


def test_each_step_takes_exactly_one_message_and_breaking_out_loses_nothing(mq):
    mq.send_many([b"%d" % i for i in range(5)])
    steps = iter(mq)
    assert mq.stats().count == 5  # making the iterator takes nothing
    assert next(steps).data == b"0"
    assert mq.stats().count == 4  # nothing taken ahead of the step
    for message in mq:
        if message.data == b"2":
            break
    del steps
    assert mq.receive_many(10, block=False) == [b"3", b"4"]


def test_messages_selects_by_type_and_passes_the_options(mq):
    mq.send(b"one", type=1)
    mq.send(b"two", type=2)
    mq.send(b"three", type=3)
    assert [m.data for m in mq.messages(2, timeout=0)] == [b"two"]
    assert [m.data for m in mq.messages(3, exclude=True, timeout=0)] == [b"one"]
    small = sysvmq.MessageQueue.from_id(mq.id, max_size=2)
    assert list(small.messages(timeout=0, truncate=True)) == [sysvmq.Message(3, b"th")]


def test_a_timeout_ends_the_loop_when_no_message_comes(mq):
    sender = threading.Timer(0.1, mq.send, (b"late",))
    sender.start()
    start = time.monotonic()
    got = [m.data for m in mq.messages(timeout=0.5)]
    elapsed = time.monotonic() - start
    sender.join()
    assert got == [b"late"]
    assert 0.5 <= elapsed < 2.5


@pytest.mark.parametrize("ending", ["timeout", "close"])
def test_an_iterator_that_ended_stays_ended(mq, ending):
    handle = sysvmq.MessageQueue.from_id(mq.id)
    messages = handle.messages(timeout=0 if ending == "timeout" else None)
    if ending == "close":
        handle.close()
    assert list(messages) == []
    mq.send(b"later")
    assert next(messages, None) is None  # the protocol: an exhausted iterator stays exhausted
    handle.close()
    assert mq.receive(block=False) == b"later"  # left for the next iterator


@pytest.mark.parametrize("library", ["asyncio", "trio"])
def test_an_async_iterator_that_ended_stays_ended(mq, library):
    async def main():
        messages = mq.messages(timeout=0)
        assert [m async for m in messages] == []
        mq.send(b"later")
        with pytest.raises(StopAsyncIteration):
            await messages.__anext__()

    asyncio.run(main()) if library == "asyncio" else trio.run(main)
    assert mq.receive(block=False) == b"later"


def test_a_message_too_large_is_raised_and_stays_queued(mq):
    mq.send(b"x" * 10)
    small = sysvmq.MessageQueue.from_id(mq.id, max_size=4)
    with pytest.raises(sysvmq.MessageTooLargeError):
        next(iter(small))
    assert mq.stats().count == 1


def test_a_queue_destroyed_while_the_loop_waits_raises_queue_removed(mq):
    handle = sysvmq.MessageQueue.from_id(mq.id)
    threading.Timer(0.1, mq.destroy).start()
    with pytest.raises(sysvmq.QueueRemovedError):
        for _ in handle:
            pass


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"type": "1"}, TypeError),
        ({"type": 1.5}, TypeError),
        ({"type": 0, "exclude": True}, ValueError),
        ({"timeout": "1"}, TypeError),
        ({"timeout": -1}, ValueError),
        ({"type": 2**80}, OverflowError),
    ],
)
def test_bad_arguments_fail_when_messages_is_called(mq, arguments, error):
    mq.send(b"stays")
    with pytest.raises(error):
        mq.messages(**arguments)
    assert mq.stats().count == 1


def test_a_loop_in_a_thread_that_blocks_every_signal_still_ends_on_close(mq):
    handle = sysvmq.MessageQueue.from_id(mq.id)
    outcome = []

    def consume():
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        outcome.extend(handle)
        outcome.append("ended")

    thread = threading.Thread(target=consume)
    thread.start()
    mq.send(b"first")
    deadline = time.monotonic() + 5
    while not outcome and time.monotonic() < deadline:
        time.sleep(0.01)
    handle.close()
    thread.join(5)
    assert not thread.is_alive()
    assert outcome == [sysvmq.Message(1, b"first"), "ended"]


INTERRUPTED = """
import sys, sysvmq
mq = sysvmq.MessageQueue.from_id(int(sys.argv[1]))
try:
    for message in mq:
        print(message.data.decode(), flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_ctrl_c_ends_a_for_loop_with_keyboard_interrupt_and_takes_nothing_more(mq):
    child = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED, str(mq.id)],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        mq.send(b"one")
        assert child.stdout.readline() == "one\n"  # the loop has it, and goes back to waiting
        wait_until_waiting(pid=child.pid)
        child.send_signal(signal.SIGINT)
        assert child.stdout.readline() == "interrupted\n"
        child.wait(10)
    finally:
        child.kill() if child.poll() is None else None
    mq.send(b"two")
    assert mq.receive(block=False) == b"two"
    assert child.returncode == 0, child.stderr.read()


@pytest.mark.parametrize("library", ["asyncio", "trio"])
def test_async_for_yields_every_message_and_ends_on_close(mq, library):
    handle = sysvmq.MessageQueue.from_id(mq.id)
    sleep = asyncio.sleep if library == "asyncio" else trio.sleep

    async def main():
        got = []

        async def feed_then_close():
            for i in range(3):
                await sleep(0.02)
                await mq.send_async(b"%d" % i, type=i + 1)
            while len(got) < 3:
                await sleep(0.01)
            await sleep(0.05)  # the loop waits again in a worker
            handle.close()

        async def consume():
            async for message in handle:
                got.append(message)

        if library == "asyncio":
            await asyncio.wait_for(asyncio.gather(feed_then_close(), consume()), 10)
        else:
            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(feed_then_close)
                    nursery.start_soon(consume)
        return got

    got = asyncio.run(main()) if library == "asyncio" else trio.run(main)
    assert got == [sysvmq.Message(i + 1, b"%d" % i) for i in range(3)]


@pytest.mark.parametrize("library", ["asyncio", "trio"])
def test_async_for_break_and_timeout_lose_nothing(mq, library):
    mq.send_many([b"%d" % i for i in range(4)])

    async def main():
        async for message in mq:
            if message.data == b"1":
                break
        rest = [m.data async for m in mq.messages(timeout=0.05)]
        return rest

    rest = asyncio.run(main()) if library == "asyncio" else trio.run(main)
    assert rest == [b"2", b"3"]
    assert mq.stats().count == 0


ROUNDS = 300


@pytest.mark.parametrize("library", ["asyncio", "trio"])
def test_async_for_cancelled_again_and_again_loses_and_duplicates_nothing(mq, library):
    # Paced, so that the loops are cancelled while the stream goes on.
    sender = threading.Thread(target=lambda: [mq.send(b"%d" % i) or time.sleep(0.0005) for i in range(ROUNDS)])
    received = []

    async def consume():
        async for message in mq:
            received.append(message.data)

    async def main():
        cancelled = 0
        deadline = time.monotonic() + 30
        while len(received) < ROUNDS and time.monotonic() < deadline:
            window = 0.002
            if library == "asyncio":
                try:
                    await asyncio.wait_for(consume(), window)
                except asyncio.TimeoutError:
                    cancelled += 1
            else:
                with trio.move_on_after(window) as scope:
                    await consume()
                cancelled += scope.cancelled_caught
        return cancelled

    sender.start()
    try:
        cancelled = asyncio.run(main()) if library == "asyncio" else trio.run(main)
    finally:
        sender.join(30)
    assert sorted(int(x) for x in received) == list(range(ROUNDS))
    assert cancelled > 10
    assert mq.stats().count == 0
