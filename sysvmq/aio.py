"""asyncio and trio for System V queues, with no message ever lost to cancellation.

The kernel offers no file descriptor to wait on, so a call that has to wait runs
in a worker thread while the event loop goes on: a send in a thread of its own, a
receive in line with the other receives of its event loop that select the same
messages, behind the one thread that waits for them all (sysvmq.aioline). A message
that is already there (or room to send) is taken straight from the event loop with
IPC_NOWAIT.

A waiting receive never takes a message in its worker thread: the thread waits
until a matching message is there and leaves it in the queue (a blocking
``msgrcv`` into a zero-byte buffer fails with E2BIG and takes nothing). The
message is then taken in the event loop's thread, with IPC_NOWAIT, by the very
coroutine that returns it. So no message is ever held only in this process's
memory: not when the call is cancelled, the handle closed, the event loop
stopped or closed (or the trio run over), or the process forked; and a worker
whose event loop was closed ends without a message coming. A zero-length
message fits a zero-byte buffer; the worker puts it back at once, at the end of
the queue.

Cancellation (``task.cancel()``, ``asyncio.wait_for``, a task group; a trio or
anyio cancel scope) sets the worker call's token and sends the thread the wake-up
signal, again every millisecond until the thread has left the system call; the
cancelled coroutine does not finish before that, so once it has finished it
touches the queue no more. A cancelled receive leaves its line; the last one to
leave stops the line's worker in this way.

The running library is found without importing one: asyncio if this thread runs
an asyncio event loop, else trio if it runs a trio task (anyio runs on either).
Under trio every call is a checkpoint, taken before anything is sent or taken:
a call in a cancelled scope sends and takes nothing.

This module knows nothing of MessageQueue: it runs blocking callables.
"""

import asyncio
import errno
import os
import queue
import sys
import threading
from types import ModuleType
from typing import Any, Callable, List, Optional, Tuple, TypeVar

from sysvmq._log import report
from sysvmq._sysvmq_cffi import ffi, lib
from sysvmq.errors import ResourceLimitError

__all__ = [
    "REKICK_SECONDS",
    "NoThreadAtExit",
    "checkpoint",
    "in_thread",
    "outcome_of",
    "running_asyncio_loop",
    "running_trio",
    "submit",
]

_T = TypeVar("_T")
_Outcome = Tuple[bool, Any]  # (succeeded, value or exception)

#: How often a cancelled call's thread is signalled again until it has left the kernel.
REKICK_SECONDS = 0.001
#: How long a worker thread waits for another call before it exits.
_IDLE_SECONDS = 10.0


class NoThreadAtExit(RuntimeError):
    """No worker thread can start: the interpreter exits. Nothing was sent or taken; the
    caller makes its call in its own thread instead, blocking its event loop meanwhile
    (in a thread that is not the exiting one, a receive then takes nothing: sysvmq._exit)."""


class _Workers:
    """Daemon threads for the calls that must wait: as many as calls wait at once.

    Threads are reused while calls keep coming and exit after _IDLE_SECONDS idle,
    so a burst of waits costs no thread start each, and an idle program keeps none.
    A job is handed to a worker that is idle, or to a new thread that has started:
    a thread that cannot start fails the call, and leaves no job behind to run later;
    at interpreter shutdown, where no thread starts, the call waits in the caller's thread.
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
        except RuntimeError as e:
            if "shutdown" not in str(e) and not sys.is_finalizing():
                raise self._no_thread(e) from None
            # The interpreter exits and starts no thread (3.12 refuses even in atexit handlers):
            # the caller makes the call in its own thread instead (see MessageQueue's async calls).
            raise NoThreadAtExit(str(e)) from None
        except MemoryError as e:
            raise self._no_thread(e) from None

    @staticmethod
    def _no_thread(e: BaseException) -> ResourceLimitError:
        return ResourceLimitError(
            errno.EAGAIN,
            f"start a worker thread for an async call: {e}; the process is at its limit of "
            "threads or memory (ulimit -u, ulimit -v, kernel.threads-max); nothing was sent or taken",
        )

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
#: Run a job (a callable of no arguments) on a worker thread; ResourceLimitError if none can start.
submit = _workers.submit
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_workers.forget_threads)


def _settle(done: "asyncio.Future[_Outcome]", outcome: _Outcome) -> None:
    if not done.done():
        done.set_result(outcome)


#: The asyncio loop this thread runs, or None: callers skip checkpoint() when there is one.
running_asyncio_loop = asyncio._get_running_loop


def running_trio() -> Optional[ModuleType]:
    """trio, if this thread runs a trio task (trio is never imported here)."""
    trio = sys.modules.get("trio")
    if trio is None:
        return None
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return None
    return trio


async def checkpoint() -> None:
    """Under trio, a checkpoint: cancelled here, a call has sent and taken nothing.

    trio's rule is that every async call may be cancelled and lets other tasks
    run; sysvmq's calls keep it before they touch the queue. Under asyncio,
    nothing: a call that need not wait never leaves the event loop's thread.
    """
    if asyncio._get_running_loop() is None:
        trio = running_trio()
        if trio is not None:
            await trio.lowlevel.checkpoint()


async def in_thread(call: Callable[[Any], _T]) -> _T:
    """Run `call(token)` on a worker thread; on cancellation stop it, then re-raise.

    `call` takes the sysvmq_token that cancels it, and must leave the queue as it
    found it when it fails or is cancelled. Runs under asyncio or trio. (Receives
    wait in line instead, sysvmq.aioline: one thread for many.)
    """
    if asyncio._get_running_loop() is not None:
        return await _in_asyncio_thread(call)
    trio = running_trio()
    if trio is not None:
        return await _in_trio_thread(trio, call)
    raise RuntimeError("sysvmq's async calls run under asyncio or trio (anyio on either), and this thread runs neither")


def outcome_of(call: Callable[[Any], _T], token: Any) -> _Outcome:
    try:
        outcome: _Outcome = (True, call(token))
    except BaseException as e:  # delivered to the awaiting coroutine
        outcome = (False, e)
    try:
        report()  # this thread waited: say what the wait machinery noted, off the event loop
    except BaseException:  # no signal reaches a worker thread: a logging handler raised it
        pass  # its caller waits for this outcome: a handler's SystemExit must not leave it waiting
    return outcome


async def _in_asyncio_thread(call: Callable[[Any], _T]) -> _T:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[_Outcome] = loop.create_future()
    token = ffi.new("sysvmq_token *")

    def work() -> None:
        outcome = outcome_of(call, token)
        try:
            loop.call_soon_threadsafe(_settle, done, outcome)
        except RuntimeError:  # the loop is closed: nobody awaits the outcome
            pass

    submit(work)
    try:
        succeeded, value = await asyncio.shield(done)
    except asyncio.CancelledError:
        while not done.done():
            if lib.sysvmq_cancel(token) < 0:
                break  # no signal can reach the thread; it leaves when the queue changes
            try:
                await asyncio.wait({done}, timeout=REKICK_SECONDS)
            except asyncio.CancelledError:
                pass  # cancelled again: still wait for the thread, then re-raise once
        raise
    if not succeeded:
        raise value
    return value  # type: ignore[no-any-return]


async def _in_trio_thread(trio: Any, call: Callable[[Any], _T]) -> _T:
    """in_thread under trio: the worker reports through the run's token; a cancelled
    (or interrupted) wait stops the worker, in a shielded scope, before it re-raises."""
    trio_token = trio.lowlevel.current_trio_token()
    done = trio.Event()
    token = ffi.new("sysvmq_token *")
    outcome: List[_Outcome] = []  # set in trio's thread, once

    def settle(result: _Outcome) -> None:  # in trio's thread; must not raise
        outcome.append(result)
        done.set()

    def work() -> None:
        result = outcome_of(call, token)
        try:
            trio_token.run_sync_soon(settle, result)
        except trio.RunFinishedError:  # the run is over: nobody awaits the outcome
            pass

    submit(work)
    try:
        await done.wait()
    except BaseException:  # trio.Cancelled, or KeyboardInterrupt delivered here
        with trio.CancelScope(shield=True):
            while not done.is_set():
                if lib.sysvmq_cancel(token) < 0:
                    break  # no signal can reach the thread; it leaves when the queue changes
                with trio.move_on_after(REKICK_SECONDS):
                    await done.wait()
        raise
    succeeded, value = outcome[0]
    if not succeeded:
        raise value
    return value  # type: ignore[no-any-return]
