"""A Ctrl-C (or any exception a signal handler raises) in the instant after a receive took
its message, before the call returned it: the message goes back to the queue, never lost.

``_thread.interrupt_main()`` raises KeyboardInterrupt at the main thread's next check for
signals without interrupting its system call: set while the thread is blocked in msgrcv,
it fires the moment the call has taken the message, which is the window under test.
"""

import _thread
import asyncio
import collections
import os
import pickle
import signal
import sys
import threading
import time
from contextlib import contextmanager

import pytest
import trio
from conftest import signal_once_blocked, wait_until_waiting

import sysvmq

ROUNDS = 20


MSGRCV = {"x86_64": 70, "aarch64": 188}.get(os.uname().machine)


def in_msgrcv(tid: int) -> bool:
    with open(f"/proc/self/task/{tid}/syscall") as f:
        return f.read().split()[0] == str(MSGRCV)


def interrupt_then_send(mq: sysvmq.MessageQueue, tid: int, message: bytes) -> None:
    deadline = time.monotonic() + 5
    while not in_msgrcv(tid):
        assert time.monotonic() < deadline
        time.sleep(0.001)
    _thread.interrupt_main()
    mq.send(message, type=7)


RECEIVES = {
    "receive": lambda mq: mq.receive(),
    "receive type": lambda mq: mq.receive(7),
    "receive timeout": lambda mq: mq.receive(timeout=30),
    "receive_message": lambda mq: mq.receive_message(),
    "receive flags (checked path)": lambda mq: mq.receive(0, sysvmq.MSG_NOERROR),
    "receive_into": lambda mq: mq.receive_into(bytearray(100)),
    "receive_many": lambda mq: mq.receive_many(10),
}


@pytest.mark.skipif(MSGRCV is None, reason="reads the system call a thread is in from /proc")
@pytest.mark.parametrize("call", RECEIVES.values(), ids=RECEIVES.keys())
def test_an_interrupt_as_the_message_is_taken_puts_it_back(mq, call):
    # Rounds until ROUNDS interrupts came during the call: how many come late, after it
    # returned (PyPy runs the handler at its next periodic check), depends on the load.
    tid = threading.get_native_id()
    interrupted = 0
    for i in range(20 * ROUNDS):
        if interrupted == ROUNDS:
            break
        helper = threading.Thread(target=interrupt_then_send, args=(mq, tid, b"%03d" % i))
        helper.start()
        try:
            call(mq)
            outcome = "delivered"  # the interrupt came late: the message was handed over
        except KeyboardInterrupt:
            outcome = "interrupted"
        try:
            helper.join(10)
            time.sleep(0.01)  # a late interrupt lands here, outside the call
        except KeyboardInterrupt:
            helper.join(10)
        assert not helper.is_alive()
        if outcome == "interrupted":
            interrupted += 1
            assert mq.receive(block=False) == b"%03d" % i  # given back, whole
        assert mq.stats().count == 0
    assert interrupted == ROUNDS


FAST = {"receive": lambda mq: mq.receive(), "receive_message": lambda mq: mq.receive_message()}
# The local each fast path copies its message into: unset (0, None) until then, and the
# buffer is reset in the same statement.
COPY = {"receive": ("mtype", 0), "receive_message": ("message", None)}


def copied(name):
    """At a line of fast path `name` that runs after the message was copied out."""
    local, unset = COPY[name]
    return lambda f: local in f and f[local] != unset


def not_copied(name):
    """At a line of fast path `name` where the copy's local is there but not yet set."""
    local, unset = COPY[name]
    return lambda f: local in f and f[local] == unset


def interrupt_twice_then_send(mq: sysvmq.MessageQueue, tid: int, message: bytes) -> None:
    deadline = time.monotonic() + 5
    while not in_msgrcv(tid):
        assert time.monotonic() < deadline
        time.sleep(0.001)
    _thread.interrupt_main(signal.SIGINT)  # type: ignore[call-arg]
    _thread.interrupt_main(signal.SIGTERM)  # type: ignore[call-arg]
    mq.send(message, type=7)


@pytest.mark.skipif(MSGRCV is None, reason="reads the system call a thread is in from /proc")
@pytest.mark.skipif(
    sys.implementation.name != "cpython" or sys.version_info < (3, 11),
    reason="interrupt_main(signum) and handlers that run only after calls: CPython 3.11+",
)
@pytest.mark.parametrize("call", RECEIVES.values(), ids=RECEIVES.keys())
def test_a_second_raising_handler_cannot_stop_the_give_back(mq, call):
    # Ctrl-C and a SIGTERM handler calling sys.exit() both pending when msgrcv returns: the
    # second handler runs while the first exception unwinds, before sysvmq returns the message
    # to the queue unless the give-back is the first call made.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit("SIGTERM"))
    tid = threading.get_native_id()
    try:
        for i in range(10):
            helper = threading.Thread(target=interrupt_twice_then_send, args=(mq, tid, b"%03d" % i))
            helper.start()
            try:
                call(mq)
                delivered = True
            except BaseException:
                delivered = False
            while True:  # a late interrupt may land anywhere here
                try:
                    helper.join(10)
                    time.sleep(0.01)
                    break
                except BaseException:
                    pass
            if not delivered:
                assert mq.receive(block=False) == b"%03d" % i
            assert mq.stats().count == 0
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def tracing(code, kind, fire):
    """While the block runs, `fire(frame)` at each event `kind` ("line" or "opcode") of a
    frame running `code`; the tracer found (coverage's, under the coverage run) is restored
    after."""

    def tracer(frame, event, arg):
        if frame.f_code is not code:
            return None
        frame.f_trace_opcodes = kind == "opcode"

        def local(frame, event, arg):
            if event == kind:
                fire(frame)
            return local

        return local

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        yield
    finally:
        sys.settrace(previous)


def raised_by_a_tracer(code, when, call, first=lambda: None):
    """What `call()` raises when a trace function raises KeyboardInterrupt at the first line
    of `code` whose locals pass `when` (a stand-in for a signal handler at that line), after
    calling `first()` there."""

    def fire(frame):
        if when(frame.f_locals):
            first()
            raise KeyboardInterrupt("from a trace function")

    with tracing(code, "line", fire), pytest.raises(KeyboardInterrupt) as info:
        call()
    return info.value


@pytest.mark.parametrize("name", FAST.keys())
def test_a_tracer_that_raises_before_the_call_gives_back_nothing(mq, name):
    # The buffer's previous call took and returned b"old"; an exception raised in this call
    # before it reaches C (here by a trace function, as pdb's quit does) must not return that
    # message to the queue a second time.
    call = FAST[name]
    mq.send(b"old")
    assert bytes(call(mq) if name == "receive" else call(mq).data) == b"old"
    mq.send(b"new")
    code = getattr(sysvmq.MessageQueue, name).__code__
    raised_by_a_tracer(code, lambda f: not_copied(name)(f) and not taken(f), lambda: call(mq))
    assert mq.receive_many(10, block=False) == [b"new"]


@pytest.mark.parametrize("name", FAST.keys())
def test_an_exception_after_the_buffer_is_freed_leaves_it_to_the_call_that_has_it(mq, name):
    # A trace function raises (as a signal handler may) after the call put its buffer back on
    # the free list, where another thread's call may have taken it and hold a message in it:
    # the message goes back from its copy, and the buffer's `held`, now the other call's, is
    # left alone (an exiting process waits for what it says).
    from sysvmq._binding.handle import HELD

    mq.send(b"payload")
    taken = []

    def freed_then_taken(f):
        buffer = f.get("buffer")
        if buffer is None or not any(b is buffer for b in mq._buffers):
            return False
        mq._buffers = collections.deque(b for b in mq._buffers if b is not buffer)  # another call has it
        buffer[2][HELD] = 7  # and holds a message of 7 bytes in it
        taken.append(buffer)
        return True

    code = getattr(sysvmq.MessageQueue, name).__code__
    raised_by_a_tracer(code, freed_then_taken, lambda: FAST[name](mq))
    (buffer,) = taken
    held = buffer[2][HELD]
    buffer[2][HELD] = -1  # the other call is over
    mq._buffers.append(buffer)
    assert held == 7
    assert mq.receive_many(10, block=False) == [b"payload"]


def on_the_free_list(mq, f):
    return any(b is f.get("buffer") for b in mq._batches)


def copied_out(f):
    return f.get("got") is not None


@pytest.mark.parametrize("sizes", ["one size", "mixed sizes"])
def test_an_exception_after_a_batch_is_copied_out_returns_it_in_order(mq, sizes):
    # A trace function raises (pdb's quit does) after receive_many copied its messages out,
    # before it returns them: they go back to the queue, in order, with their types, and no
    # batch says it holds them.
    from sysvmq._binding import process

    payloads = [b"%03d" % i if sizes == "one size" else b"x" * (i + 1) for i in range(5)]
    for i, payload in enumerate(payloads):
        mq.send(payload, type=i + 1)
    raised_by_a_tracer(sysvmq.MessageQueue._receive_batch.__code__, copied_out, lambda: mq.receive_many(10))
    back = [mq.receive_message(block=False) for _ in range(mq.stats().count)]
    assert back == [sysvmq.Message(i + 1, payload) for i, payload in enumerate(payloads)]
    assert [batch.held for batch in process.watched()[1] if batch.held > 0] == []
    assert len(mq._batches) == 1  # the batch is free again, once


def test_no_line_of_a_batch_receive_runs_after_its_batch_is_freed(mq):
    # Where a tracer could raise, the batch must still be this call's: once freed, another
    # thread's call may have it, and the messages copied out of it could not go back.
    lines = []

    def note(frame):
        if on_the_free_list(mq, frame.f_locals):
            lines.append(frame.f_lineno)

    mq.send_many([b"a", b"bb"])
    with tracing(sysvmq.MessageQueue._receive_batch.__code__, "line", note):
        received = mq.receive_many(10)
    assert received == [b"a", b"bb"]
    assert lines == []


def test_a_batch_receive_that_fails_frees_its_batch(mq):
    # A receive_many that times out (or fails otherwise) leaves its batch for the next call,
    # which need not allocate one.
    for _ in range(3):
        with pytest.raises(sysvmq.QueueTimeoutError):
            mq.receive_many(10, timeout=0.001)
    assert len(mq._batches) == 1


@pytest.mark.skipif(MSGRCV is None, reason="reads the system call a thread is in from /proc")
@pytest.mark.skipif(
    sys.implementation.name != "cpython",
    reason="PyPy runs the handler of interrupt_main() at its next periodic check, which may come after the call",
)
@pytest.mark.parametrize("call", RECEIVES.values(), ids=RECEIVES.keys())
def test_an_overflow_error_from_a_handler_is_raised_and_the_message_kept(mq, call):
    def handler(signum, frame):
        raise OverflowError("from the application's handler")

    previous = signal.signal(signal.SIGINT, handler)
    tid = threading.get_native_id()
    later = threading.Timer(1.0, mq.send, (b"second", 7))  # what a swallowed error would return instead
    try:
        helper = threading.Thread(target=interrupt_then_send, args=(mq, tid, b"first"))
        helper.start()
        later.start()
        with pytest.raises(OverflowError, match="application"):
            call(mq)
        helper.join(10)
        later.join(10)
    finally:
        signal.signal(signal.SIGINT, previous)  # first: a late handler may raise in what follows
        later.cancel()
    assert mq.receive_many(10, block=False) == [b"first", b"second"]


def test_ctrl_c_in_a_waiting_send_many_says_how_many_went(mq):
    # Without .sent on the KeyboardInterrupt a caller cannot retry the rest without doubling.
    mq.set(max_bytes=40)
    messages = [b"%09d" % i for i in range(10)]  # room for four
    killer = signal_once_blocked(signal.SIGINT)
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            mq.send_many(messages, timeout=10)
    finally:
        killer.join(15)
    assert info.value.sent == 4  # type: ignore[attr-defined]
    assert mq.receive_many(10) == messages[:4]


# ---- the calls built on a receive: sysvmq.Queue.get and the async receives ----


def queue_get(serializer):
    def get(mq):
        with sysvmq.Queue.from_id(mq.id, serializer=serializer, trust_senders=True) as q:
            return q.get()

    return get


async def first_of_async_for(mq):
    async for message in mq:
        return message


AFTER_A_TAKE = {  # the method that takes, and its local that holds the message once taken
    "Queue.get raw": (sysvmq.MessageQueue._receive_then, queue_get(None), "got"),
    "Queue.get pickle": (sysvmq.MessageQueue._receive_then, queue_get(pickle), "got"),
    "receive_message_async asyncio": (
        sysvmq.MessageQueue._take_waiting,
        lambda mq: asyncio.run(mq.receive_message_async()),
        "message",
    ),
    "receive_async asyncio": (
        sysvmq.MessageQueue._take_waiting,
        lambda mq: asyncio.run(mq.receive_async()),
        "message",
    ),
    "async for asyncio": (
        sysvmq.MessageQueue._take_waiting,
        lambda mq: asyncio.run(first_of_async_for(mq)),
        "message",
    ),
    "receive_message_async trio": (
        sysvmq.MessageQueue._take_waiting,
        lambda mq: trio.run(mq.receive_message_async),
        "message",
    ),
}


@pytest.mark.parametrize("method, call, holder", AFTER_A_TAKE.values(), ids=AFTER_A_TAKE.keys())
def test_an_exception_between_the_take_and_the_return_gives_the_message_back(mq, method, call, holder):
    # A trace function raises, as a signal handler may, at the first line the call runs after
    # it took its message: the message goes back to the queue.
    payload = pickle.dumps({"order": 1})
    mq.send(payload)
    raised_by_a_tracer(method.__code__, lambda f: f.get(holder) is not None, lambda: call(mq))
    assert mq.receive_many(10, block=False) == [payload]


def test_an_interrupt_while_loads_runs_gives_the_message_back(mq):
    started = threading.Event()

    class SlowPickle:
        dumps = staticmethod(pickle.dumps)

        @staticmethod
        def loads(data):
            started.set()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                pass  # where the interrupt lands
            raise AssertionError("no interrupt came")

    helper = threading.Thread(target=lambda: started.wait(5) and _thread.interrupt_main())
    with sysvmq.Queue.from_id(mq.id, serializer=SlowPickle, trust_senders=True) as q:
        q.put({"order": 1})
        helper.start()
        with pytest.raises(KeyboardInterrupt):
            q.get()
        helper.join(10)
    assert pickle.loads(mq.receive(block=False)) == {"order": 1}


# ---- a give-back that finds no room: the message rides on the exception ----


def is_set(name):
    return lambda f: f.get(name) is not None and f.get(name) is not False


def taken(f):
    """At a line after the call took its message (`n`, its length, is -1 until then)."""
    return f.get("n", -1) >= 0


def taken_not_copied(name):
    return lambda f: taken(f) and not_copied(name)(f)


QUEUE_FULL = {
    "receive copied": (sysvmq.MessageQueue.receive, lambda mq: mq.receive(), copied("receive")),
    "receive in buffer": (sysvmq.MessageQueue.receive, lambda mq: mq.receive(), taken_not_copied("receive")),
    "receive_message copied": (
        sysvmq.MessageQueue.receive_message,
        lambda mq: mq.receive_message(),
        copied("receive_message"),
    ),
    "receive_message in buffer": (
        sysvmq.MessageQueue.receive_message,
        lambda mq: mq.receive_message(),
        taken_not_copied("receive_message"),
    ),
    "checked path copied": (
        sysvmq.MessageQueue._receive_one,
        lambda mq: mq.receive(0, sysvmq.MSG_NOERROR),
        is_set("got"),
    ),
    "checked path in buffer": (
        sysvmq.MessageQueue._receive_one,
        lambda mq: mq.receive(0, sysvmq.MSG_NOERROR),
        lambda f: taken(f) and f.get("got") is None,
    ),
    "receive_many": (sysvmq.MessageQueue._receive_batch, lambda mq: mq.receive_many(10), lambda f: "sizes" in f),
    "Queue.get": (sysvmq.MessageQueue._receive_then, queue_get(None), is_set("got")),
    "receive_message_async": (
        sysvmq.MessageQueue._take_waiting,
        lambda mq: asyncio.run(mq.receive_message_async()),
        is_set("message"),
    ),
}


@pytest.mark.parametrize("method, call, after_take", QUEUE_FULL.values(), ids=QUEUE_FULL.keys())
def test_a_message_that_cannot_go_back_to_a_full_queue_is_on_the_exception(mq, method, call, after_take):
    # A sender waits for room: the room a receive makes is filled at once, so the message
    # an interrupted receive took cannot go back (within the second it tries). It is not
    # lost: it is on the exception, as .undelivered.
    sender = full_with_a_sender_waiting(mq)
    error = raised_by_a_tracer(method.__code__, after_take, lambda: call(mq), lambda: sent(sender))
    on_error = [m.data for m in error.undelivered]  # type: ignore[attr-defined]
    assert on_error and all(m.type == 1 for m in error.undelivered)  # type: ignore[attr-defined]
    # Nothing lost, nothing doubled (a batch may have taken the sender's message too).
    assert sorted(on_error + mq.receive_many(10, block=False)) == [b"A" * 8, b"B" * 8]


@pytest.mark.parametrize("method, call, after_take", QUEUE_FULL.values(), ids=QUEUE_FULL.keys())
def test_a_message_on_the_exception_is_not_waited_for_at_exit(mq, method, call, after_take):
    # The queue is removed (ipcrm) between the take and the interrupt: the message cannot go
    # back, and rides on the exception, which the application keeps to read it. The process
    # that exits then (sysvmq._binding.process) must not wait FINISH_SECONDS for a buffer
    # that still seems to hold it.
    from sysvmq._binding import process

    mq.send(b"A" * 8)
    removed = []

    def removed_after_the_take(f):
        if after_take(f) and not removed:
            mq.destroy()
            removed.append(True)
        return bool(removed)

    error = raised_by_a_tracer(method.__code__, removed_after_the_take, lambda: call(mq))
    assert error.undelivered == [sysvmq.Message(1, b"A" * 8)]  # type: ignore[attr-defined]
    buffers, batches = process.watched()
    assert [rb.held for rb in buffers if rb.held >= 0] == []
    assert [batch.held for batch in batches if batch.held > 0] == []


def full_with_a_sender_waiting(mq):
    """A queue holding one 8-byte message, full, with a sender asleep waiting for room."""
    mq.set(max_bytes=8)
    mq.send(b"A" * 8)
    sender = threading.Thread(target=sysvmq.MessageQueue.from_id(mq.id).send, args=(b"B" * 8,))
    sender.start()
    wait_until_waiting(sender.native_id)
    return sender


def sent(sender):
    """Return once `sender` (of full_with_a_sender_waiting) has filled the room a take made."""
    sender.join(10)
    assert not sender.is_alive(), "the sender never sent"


def test_a_loads_interrupted_on_a_full_queue_hands_the_message_over(mq):
    # As a handler's Ctrl-C during loads would: raised by loads itself (no trace function).
    class Interrupted:
        dumps = staticmethod(bytes)

        @staticmethod
        def loads(data):
            sent(sender)
            raise KeyboardInterrupt

    sender = full_with_a_sender_waiting(mq)
    with (
        sysvmq.Queue.from_id(mq.id, serializer=Interrupted, trust_senders=True) as q,
        pytest.raises(KeyboardInterrupt) as info,
    ):
        q.get()
    sender.join(10)
    assert info.value.undelivered == [sysvmq.Message(1, b"A" * 8)]  # type: ignore[attr-defined]
    assert mq.receive_many(10, block=False) == [b"B" * 8]


def test_an_async_receive_interrupted_on_a_full_queue_hands_the_message_over(mq, monkeypatch):
    calls = []

    def interrupted(message):
        calls.append(message)
        if len(calls) > 1:  # the handler builds the Message it hands over with it too
            return sysvmq.Message(*message)
        sent(sender)
        raise KeyboardInterrupt

    sender = full_with_a_sender_waiting(mq)
    monkeypatch.setattr(sysvmq._binding.handle, "new_message", interrupted)
    with pytest.raises(KeyboardInterrupt) as info:
        asyncio.run(mq.receive_message_async())
    monkeypatch.undo()
    sender.join(10)
    assert info.value.undelivered == [sysvmq.Message(1, b"A" * 8)]  # type: ignore[attr-defined]
    assert mq.receive_many(10, block=False) == [b"B" * 8]


def test_every_buffer_on_the_free_list_holds_no_message(mq):
    """What the give-back on an exception and the exiting process (sysvmq._binding.process) rely on:
    a call resets its buffer's `taken` once the payload is copied out, whatever the path."""
    from sysvmq._binding.handle import HELD

    mq.send_many([b"a", b"bb", b"ccc", b"dddd"], 3)
    mq.send_many([b"e" * 10, b"kept for peek"])
    into = bytearray(16)
    calls = [
        lambda: mq.receive(),
        lambda: mq.receive_message(3),
        lambda: mq.receive(3, timeout=1),
        lambda: mq.receive(-3, block=False),
        lambda: mq.receive_into(into),
        lambda: mq.peek(0),
    ]
    for call in calls:
        call()
    for call in (lambda: mq.receive(99, block=False), lambda: mq.receive(99, timeout=0.001), lambda: mq.peek(5)):
        with pytest.raises(sysvmq.SysVMQError):
            call()
    assert mq._buffers, "the calls returned their buffers"
    assert [fields[HELD] for _, _, fields in mq._buffers] == [-1] * len(mq._buffers)


# ---- an exception between any two instructions ----


def raised_at(code, offset, call):
    """What `call()` raises (None if it returns) when a trace function raises KeyboardInterrupt
    just before the instruction at `offset` of `code`: a stand-in for a signal handler, which
    CPython 3.9 and PyPy run between most instructions, not only after calls."""

    def fire(frame):
        if frame.f_lasti == offset:
            raise KeyboardInterrupt("from a trace function")

    with tracing(code, "opcode", fire):
        try:
            call()
        except KeyboardInterrupt as error:
            return error
    return None


def held_by_no_buffer(mq):
    """No receive on `mq` runs: none of its receive buffers or batches may say it holds a
    message, or an exiting process waits for it (sysvmq._binding.process)."""
    from sysvmq._binding import process

    buffers, batches = process.watched()
    held = [rb.held for rb in buffers if rb.handle == mq._h and rb.held >= 0]
    return held + [batch.held for batch in batches if batch.handle == mq._h and batch.held > 0] == []


EVERY_INSTRUCTION = {
    "receive": (sysvmq.MessageQueue.receive, lambda mq: mq.receive(), 1),
    "receive_message": (sysvmq.MessageQueue.receive_message, lambda mq: mq.receive_message(), 1),
    "checked path": (sysvmq.MessageQueue._receive_one, lambda mq: mq.receive(0, sysvmq.MSG_NOERROR), 1),
    "receive_message_async": (
        sysvmq.MessageQueue._take_waiting,
        lambda mq: asyncio.run(mq.receive_message_async()),
        1,
    ),
    "receive_many": (sysvmq.MessageQueue._receive_batch, lambda mq: mq.receive_many(10), 3),
}


@pytest.mark.parametrize("method, call, count", EVERY_INSTRUCTION.values(), ids=EVERY_INSTRUCTION.keys())
def test_an_exception_before_any_instruction_loses_nothing_and_leaves_nothing_held(mq, method, call, count):
    # Whichever instruction of a receive the exception comes before, the messages are either
    # received or back in the queue, in order with their types, once; and no buffer is left
    # saying it holds one (an exiting process would wait for it).
    import dis

    sent = [sysvmq.Message(i + 2, b"%d" % i) for i in range(count)]
    # Not the return itself: there the messages are handed over, as in the caller's next
    # instruction (CPython 3.9 and PyPy run a handler there even past the except block).
    # Nor NOT_TAKEN (CPython 3.14+), a branch marker for monitoring where no signal handler
    # runs: CPython 3.14 leaves it out of the exception table, so that an exception a tracer
    # raises there skips every except block (python/cpython#148278).
    body = [
        i
        for i in dis.get_instructions(method.__code__)
        if not i.opname.startswith("RETURN_") and i.opname != "NOT_TAKEN"
    ]
    for instruction in body:
        for message in sent:
            mq.send(message.data, type=message.type)
        error = raised_at(method.__code__, instruction.offset, lambda: call(mq))
        back = [mq.receive_message(block=False) for _ in range(mq.stats().count)]
        where = f"before {instruction.opname} at {instruction.offset}"
        assert back == ([] if error is None else sent), where
        assert getattr(error, "undelivered", []) == [], where
        assert held_by_no_buffer(mq), where
        del error
