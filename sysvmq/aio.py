"""asyncio for System V queues, with no message ever lost to cancellation.

The kernel offers no file descriptor to wait on, so a call that has to wait runs
in a thread of its own while the event loop goes on. A message that is already
there (or room to send) is taken straight from the event loop with IPC_NOWAIT.

A waiting receive never takes a message in its worker thread: the thread waits
until a matching message is there and leaves it in the queue (a blocking
``msgrcv`` into a zero-byte buffer fails with E2BIG and takes nothing). The
message is then taken in the event loop's thread, with IPC_NOWAIT, by the very
coroutine that returns it. So no message is ever held only in this process's
memory: not when the call is cancelled, the handle closed, the event loop
stopped or closed, or the process forked. A zero-length message fits a zero-byte
buffer; the worker puts it back at once, at the end of the queue.

Cancellation (``task.cancel()``, ``asyncio.wait_for``, a task group) sets the
worker call's token and sends the thread the wake-up signal, again every
millisecond until the thread has left the system call; the cancelled coroutine
does not finish before that, so once it has finished it touches the queue no more.

This module knows nothing of MessageQueue: it runs blocking callables.
"""

import asyncio
import errno
import os
import queue
import threading
from typing import Any, Callable, Optional, Tuple, TypeVar

from sysvmq._log import report
from sysvmq._sysvmq_cffi import ffi, lib
from sysvmq.errors import ResourceLimitError

__all__ = ["in_thread"]

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
    A job is handed to a worker that is idle, or to a new thread that has started:
    a thread that cannot start fails the call, and leaves no job behind to run later.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = 0  # waiting workers not yet promised to a submitted job

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
                self._jobs.put(job)
                return
        worker = threading.Thread(target=self._run, args=(job,), name="sysvmq-async", daemon=True)
        try:
            worker.start()
        except (RuntimeError, MemoryError) as e:
            raise ResourceLimitError(
                errno.EAGAIN,
                f"start a worker thread for an async call: {e}; the process is at its limit of "
                "threads or memory (ulimit -u, ulimit -v, kernel.threads-max); nothing was sent or taken",
            ) from None

    def _run(self, job: Optional[Callable[[], None]]) -> None:
        while True:
            if job is not None:
                job()
                with self._lock:
                    self._idle += 1
            try:
                job = self._jobs.get(timeout=_IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # no queued job counts on this thread
                        self._idle -= 1
                        return
                job = None

    def forget_threads(self) -> None:
        """In a forked child no worker exists: start from none."""
        self.__init__()  # type: ignore[misc]


_workers = _Workers()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_workers.forget_threads)


def _settle(done: "asyncio.Future[_Outcome]", outcome: _Outcome) -> None:
    if not done.done():
        done.set_result(outcome)


def _give_back_outcome(outcome: _Outcome, give_back: Callable[[Any], bool]) -> bool:
    """Hand what a call returned to `give_back`: whether nothing is left to deliver."""
    succeeded, value = outcome
    return not succeeded or give_back(value)


async def in_thread(call: Callable[[Any], _T], give_back: Optional[Callable[[_T], bool]] = None) -> _T:
    """Run `call(token)` on a worker thread; on cancellation stop it, then re-raise.

    `call` takes the sysvmq_token that cancels it, and must leave the queue as it
    found it when it fails or is cancelled. What it returns after its caller is gone
    (cancelled, or the loop closed) goes to `give_back`, which returns the message it
    holds to the queue if it can: if it cannot, the cancelled caller gets the value
    after all, rather than the message being lost.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[_Outcome] = loop.create_future()
    token = ffi.new("sysvmq_token *")

    def work() -> None:
        outcome: _Outcome
        try:
            outcome = (True, call(token))
        except BaseException as e:  # delivered to the awaiting coroutine
            outcome = (False, e)
        report()  # this thread waited: say what the wait machinery noted, off the event loop
        try:
            loop.call_soon_threadsafe(_settle, done, outcome)
        except RuntimeError:  # the loop is closed: nobody awaits the outcome
            if give_back is not None:
                _give_back_outcome(outcome, give_back)

    _workers.submit(work)
    try:
        succeeded, value = await asyncio.shield(done)
    except asyncio.CancelledError:
        while not done.done():
            if lib.sysvmq_cancel(token) < 0:
                break  # no signal can reach the thread; it leaves when the queue changes
            try:
                await asyncio.wait({done}, timeout=_REKICK_SECONDS)
            except asyncio.CancelledError:
                pass  # cancelled again: still wait for the thread, then re-raise once
        if give_back is not None:
            if not done.done():
                done.add_done_callback(lambda f: _give_back_outcome(f.result(), give_back))
            elif not _give_back_outcome(done.result(), give_back):
                return done.result()[1]  # type: ignore[no-any-return]  # not lost: this caller has it
        raise
    if not succeeded:
        raise value
    return value  # type: ignore[no-any-return]
