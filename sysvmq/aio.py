"""asyncio for System V queues, with no message ever lost to cancellation.

The kernel offers no file descriptor to wait on, so a call that has to wait runs
in a thread of its own while the event loop goes on. A message that is already
there (or room to send) is taken straight from the event loop with IPC_NOWAIT.

Cancellation (``task.cancel()``, ``asyncio.wait_for``, a task group) works like
this. The waiting thread's call carries a token; cancelling sets the token and
sends the thread the wake-up signal, again every millisecond until the thread
has left the system call. The cancelled coroutine does not finish before that.
Then exactly one of two things is true:

* the thread took nothing off the queue (it was woken, or saw the token before
  it entered the kernel), or
* it had already taken a message: that message is put in the handle's stash,
  and the next receive on the same handle whose type selection matches it
  returns it before asking the kernel.

So a message is never lost, and once the cancelled call has finished it takes
nothing more from the queue. A cancelled ``send_async`` may still have sent its
message if it got room before the cancellation reached it.
"""

import asyncio
import errno
import os
import queue
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional, Tuple, TypeVar

from sysvmq._sysvmq_cffi import ffi, lib
from sysvmq.errors import QueueEmptyError, QueueFullError, error_for

if TYPE_CHECKING:
    from sysvmq.queue import Message, MessageQueue

_T = TypeVar("_T")
_Outcome = Tuple[bool, Any]  # (succeeded, value or exception)

#: How often a cancelled call's thread is signalled again until it has left the kernel.
_REKICK_SECONDS = 0.001
#: How long a worker thread waits for another call before it exits.
_IDLE_SECONDS = 10.0


class _Workers:
    """Daemon threads for the calls that must wait: as many as calls wait at once.

    Threads are reused while calls keep coming and exit after _IDLE_SECONDS idle,
    so a burst of waits costs no thread start each, and an idle program keeps none.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: "queue.SimpleQueue[Callable[[], None]]" = queue.SimpleQueue()
        self._idle = 0  # waiting workers not yet promised to a submitted job

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1
        self._jobs.put(job)
        if start:
            threading.Thread(target=self._run, name="sysvmq-async", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=_IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # no queued job counts on this thread
                        self._idle -= 1
                        return
                continue
            job()
            with self._lock:
                self._idle += 1

    def forget_threads(self) -> None:
        """In a forked child no worker exists: start from none."""
        self.__init__()  # type: ignore[misc]


_workers = _Workers()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_workers.forget_threads)


def _settle(done: "asyncio.Future[_Outcome]", outcome: _Outcome) -> None:
    if not done.done():
        done.set_result(outcome)


async def _in_thread(call: Callable[[Any], _T], keep: Optional[Callable[[_T], None]]) -> _T:
    """Run `call(token)` on a worker thread; on cancellation stop it, and `keep` its result."""
    loop = asyncio.get_running_loop()
    done: "asyncio.Future[_Outcome]" = loop.create_future()
    token = ffi.new("sysvmq_token *")

    def work() -> None:
        outcome: Tuple[bool, Any]
        try:
            result = call(token)
            outcome = (True, result)
        except BaseException as e:  # delivered to the awaiting coroutine
            outcome = (False, e)
        try:
            loop.call_soon_threadsafe(_settle, done, outcome)
        except RuntimeError:  # the loop is closed: nobody awaits the result any more
            if outcome[0] and keep is not None:
                keep(result)

    _workers.submit(work)
    try:
        succeeded, value = await asyncio.shield(done)
    except asyncio.CancelledError:
        if keep is not None:
            # Whatever the thread still takes goes to `keep`, even if we stop waiting for it.
            done.add_done_callback(lambda f: keep(f.result()[1]) if f.result()[0] else None)
        while not done.done():
            if lib.sysvmq_cancel(token) < 0:
                break  # the wake-up signal was taken over: the thread cannot be woken
            try:
                await asyncio.wait({done}, timeout=_REKICK_SECONDS)
            except asyncio.CancelledError:
                pass  # cancelled again: still wait for the thread, then re-raise once
        raise
    if not succeeded:
        raise value
    return value  # type: ignore[no-any-return]


async def send(mq: "MessageQueue", message: Any, mtype: int, timeout: Optional[float]) -> None:
    from sysvmq.queue import _check_send_type, payload, send_options

    data = payload(message)
    mtype = _check_send_type(mtype)
    flags, deadline = send_options(0, True, timeout)
    try:
        return mq._send_data(data, mtype, flags | lib.IPC_NOWAIT, -1, None, ffi.NULL)
    except QueueFullError:
        pass
    if deadline >= 0 and lib.sysvmq_monotonic_ns() >= deadline:
        raise error_for(errno.ETIMEDOUT, f"send to {mq._describe()}", f"no room within the timeout of {timeout} s")
    await _in_thread(lambda token: mq._send_data(data, mtype, flags, deadline, timeout, token), None)


async def receive_message(mq: "MessageQueue", mtype: int, timeout: Optional[float], truncate: bool, exclude: bool) -> "Message":
    from sysvmq.queue import Message, receive_options

    flags, deadline = receive_options(mtype, 0, True, timeout, truncate, exclude)
    cap = mq.max_size
    try:
        _, got_type, data = mq._take_message(mtype, flags | lib.IPC_NOWAIT, -1, None, ffi.NULL, cap)
        return Message(got_type, data)
    except QueueEmptyError:
        pass
    if deadline >= 0 and lib.sysvmq_monotonic_ns() >= deadline:
        raise error_for(errno.ETIMEDOUT, f"receive from {mq._describe()}", f"nothing arrived within the timeout of {timeout} s")

    def receive(token: Any) -> "Message":
        _, got_type, data = mq._take_message(mtype, flags, deadline, timeout, ffi.NULL, cap, token)
        return Message(got_type, data)

    return await _in_thread(receive, mq._stash.append)
