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
whose event loop was closed ends without a message coming (a send's, without
sending: it looks for its loop every ALIVE_SECONDS as it waits for room). A zero-length
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

The hand-over between a worker thread and the coroutine that waits for it is written
once (:func:`in_thread`, :func:`stop`), over an adapter for each library
(:class:`AsyncioRunner`, :class:`TrioRunner`): what the protocol needs of an event
loop or a trio run. sysvmq.aioline's lines use the same pieces.

This module knows nothing of MessageQueue: it runs blocking callables.
"""

import asyncio
import errno
import os
import queue
import sys
import threading
from types import ModuleType
from typing import Any, Callable, List, Optional, Tuple, Type, TypeVar

from sysvmq._binding.system import cancel, new_token, report
from sysvmq.errors import ResourceLimitError

__all__ = [
    "ALIVE_SECONDS",
    "REKICK_SECONDS",
    "AsyncioRunner",
    "Gone",
    "Job",
    "NoThreadAtExit",
    "StillWaiting",
    "TrioRunner",
    "checkpoint",
    "current_runner",
    "in_thread",
    "outcome_of",
    "running_asyncio_loop",
    "running_trio",
    "stop",
    "submit",
    "unwrapped",
    "while_alive",
]

_T = TypeVar("_T")
_Outcome = Tuple[bool, Any]  # (succeeded, value or exception)

#: How often a cancelled call's thread is signalled again until it has left the kernel.
REKICK_SECONDS = 0.001
#: How often a waiting worker looks whether its event loop was closed (or its trio run ended).
ALIVE_SECONDS = 0.5
#: How long a worker thread waits for another call before it exits.
_IDLE_SECONDS = 10.0


class NoThreadAtExit(RuntimeError):
    """No worker thread can start: the interpreter exits. Nothing was sent or taken; the
    caller makes its call in its own thread instead, blocking its event loop meanwhile
    (in a thread that is not the exiting one, a receive then takes nothing: sysvmq._binding.process)."""


def _unpatched(module: str, name: str) -> Any:
    """`module.name` as the standard library has it, even under gevent's monkey-patching
    (gevent is never imported here): a worker must be an operating-system thread, which
    waits in the kernel while the event loop goes on. A greenlet waiting in msgrcv would
    hold the one thread the loop and every greenlet share, until a message came."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        return monkey.get_original(module, name)
    return getattr(sys.modules[module], name)


def _greenlet_threads() -> bool:
    """Whether threading's threads are greenlets: gevent monkey-patched it."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


class _Workers:
    """Daemon threads for the calls that must wait: as many as calls wait at once.

    Threads are reused while calls keep coming and exit after _IDLE_SECONDS idle,
    so a burst of waits costs no thread start each, and an idle program keeps none.
    A job is handed to a worker that is idle, or to a new thread that has started:
    a thread that cannot start fails the call, and leaves no job behind to run later;
    at interpreter shutdown, where no thread starts, the call waits in the caller's thread.
    """

    def __init__(self) -> None:
        self._lock = _unpatched("_thread", "allocate_lock")()
        self._jobs: queue.SimpleQueue[Callable[[], None]] = _unpatched("queue", "SimpleQueue")()
        self._idle = 0  # waiting workers not yet promised to a submitted job

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
                self._jobs.put(job)
                return
        try:
            self._start(job)
        except RuntimeError as e:
            if "shutdown" not in str(e) and not sys.is_finalizing():
                raise self._no_thread(e) from None
            # The interpreter exits and starts no thread (3.12 refuses even in atexit handlers):
            # the caller makes the call in its own thread instead (see MessageQueue's async calls).
            raise NoThreadAtExit(str(e)) from None
        except MemoryError as e:
            raise self._no_thread(e) from None

    def _start(self, job: Callable[[], None]) -> None:
        # The job goes in a list the thread empties: a Thread keeps its arguments as long as it
        # runs, and a job holds its call's coroutine and data.
        first = [job]
        if _greenlet_threads():  # an unnamed thread of the system's own
            _unpatched("_thread", "start_new_thread")(self._run, (first,))
        else:
            threading.Thread(target=self._run, args=(first,), name="sysvmq-async", daemon=True).start()

    @staticmethod
    def _no_thread(e: BaseException) -> ResourceLimitError:
        return ResourceLimitError(
            errno.EAGAIN,
            f"start a worker thread for an async call: {e}; the process is at its limit of "
            "threads or memory (ulimit -u, ulimit -v, kernel.threads-max); nothing was sent or taken",
        )

    def _run(self, first: List[Callable[[], None]]) -> None:
        job: Optional[Callable[[], None]] = first.pop()
        while True:
            if job is not None:
                job()
                job = None  # an idle worker keeps nothing of its last call (its coroutine, its data)
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


class Gone(Exception):
    """The event loop is closed (the trio run is over): nobody awaits what a worker posts."""


class StillWaiting(Exception):
    """A worker's call waited as long as it was asked to, and its own deadline has not come:
    the worker looks whether its event loop is still there before it waits on."""


class AsyncioRunner:
    """What the hand-over needs of an asyncio event loop."""

    __slots__ = ("loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def ident(self) -> object:
        return self.loop

    def signal(self) -> "asyncio.Future[None]":
        """A one-shot event, fired in the loop's thread."""
        return self.loop.create_future()

    @staticmethod
    def fire(signal: "asyncio.Future[None]") -> None:
        if not signal.done():
            signal.set_result(None)

    @staticmethod
    def fired(signal: "asyncio.Future[None]") -> bool:
        return signal.done()

    def post(self, callback: Callable[..., None], *args: Any) -> None:
        """Run `callback(*args)` in the loop's thread (from any thread); Gone if it is closed."""
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            raise Gone from None

    def alive(self) -> bool:
        return not self.loop.is_closed()

    def clock(self) -> float:
        return self.loop.time()

    async def wait(self, signal: "asyncio.Future[None]", deadline: Optional[float]) -> None:
        """Until `signal` fires or the loop's clock reaches `deadline`; cancellable, and a
        cancellation leaves `signal` as it is (shielded)."""
        timer = None if deadline is None else self.loop.call_at(deadline, self.fire, signal)
        try:
            await asyncio.shield(signal)
        finally:
            if timer is not None:
                timer.cancel()

    async def wait_shielded(self, signal: "asyncio.Future[None]", seconds: float) -> Optional[BaseException]:
        """Until `signal` fires, at most `seconds`; a cancellation meanwhile is not raised
        but returned: asyncio delivers it once, and the caller raises it in the end."""
        try:
            await asyncio.wait({signal}, timeout=seconds)
        except asyncio.CancelledError as e:
            return e
        return None


class TrioRunner:
    """What the hand-over needs of a trio run."""

    __slots__ = ("token", "trio")

    def __init__(self, trio: Any) -> None:
        self.trio = trio
        self.token = trio.lowlevel.current_trio_token()

    def ident(self) -> object:
        return self.token

    def signal(self) -> Any:
        return self.trio.Event()

    @staticmethod
    def fire(signal: Any) -> None:
        signal.set()

    @staticmethod
    def fired(signal: Any) -> bool:
        return bool(signal.is_set())

    def post(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            self.token.run_sync_soon(callback, *args)
        except self.trio.RunFinishedError:
            raise Gone from None

    def alive(self) -> bool:
        try:
            self.post(_nothing)
        except Gone:
            return False
        return True

    def clock(self) -> float:
        return float(self.trio.current_time())

    async def wait(self, signal: Any, deadline: Optional[float]) -> None:
        with self.trio.move_on_at(float("inf") if deadline is None else deadline):
            await signal.wait()

    async def wait_shielded(self, signal: Any, seconds: float) -> Optional[BaseException]:
        """None: a cancellation meanwhile stands, and the next checkpoint raises it."""
        with self.trio.CancelScope(shield=True), self.trio.move_on_after(seconds):
            await signal.wait()
        return None


def _nothing() -> None:
    pass


Runner = Any  # AsyncioRunner or TrioRunner


def current_runner() -> Runner:
    """The adapter for the library this thread runs: asyncio, else trio."""
    loop = asyncio._get_running_loop()
    if loop is not None:
        return AsyncioRunner(loop)
    trio = running_trio()
    if trio is None:
        raise RuntimeError(
            "sysvmq's async calls run under asyncio or trio (anyio on either), and this thread runs neither"
        )
    return TrioRunner(trio)


class Job:
    """One blocking call in a worker thread: the token that cancels it, the signal that
    fires once it has finished (in the loop's thread), and its outcome by then."""

    __slots__ = ("done", "outcome", "stopped", "token")

    def __init__(self, done: Any) -> None:
        self.done = done
        self.token = new_token()
        self.outcome: _Outcome = (False, None)
        self.stopped = False  # cancelled by its owner (a line that emptied, say)


def unwrapped(outcome: _Outcome) -> Any:
    """The value of a successful outcome; a failed one's exception, raised."""
    succeeded, value = outcome
    if not succeeded:
        raise value
    return value


async def stop(runner: Runner, job: Job) -> Optional[BaseException]:
    """Cancel `job` and wait, however often cancelled meanwhile, until its thread has left
    the kernel: once this returns, the call touches the queue no more. Returns the asyncio
    cancellation that came meanwhile, held back until then, or None: a caller that raises
    no exception of its own raises it, or the task would never learn it was cancelled."""
    held = None
    while not runner.fired(job.done):
        if cancel(job.token) < 0:
            break  # no signal can reach the thread; it leaves when the queue changes
        held = await runner.wait_shielded(job.done, REKICK_SECONDS) or held
    return held


def start(
    runner: Runner,
    job: Job,
    call: Callable[[Any], Any],
    finished: Optional[Callable[[Job], None]] = None,
    gone: Optional[Callable[[_Outcome], None]] = None,
) -> None:
    """Run `call(job.token)` on a worker thread; then, in the loop's thread, store its
    outcome in `job`, fire `job.done` and call `finished(job)` if given. If the loop is
    closed by then (the run is over), the worker thread calls `gone(outcome)` instead, if
    given (nobody awaits the outcome)."""

    def work() -> None:
        outcome = outcome_of(call, job.token)
        try:
            runner.post(_settle, runner, job, outcome, finished)
        except Gone:
            if gone is not None:
                gone(outcome)

    submit(work)


def _settle(runner: Runner, job: Job, outcome: _Outcome, finished: Optional[Callable[[Job], None]]) -> None:
    job.outcome = outcome
    runner.fire(job.done)
    if finished is not None:
        finished(job)


async def in_thread(call: Callable[[Any, float], _T]) -> _T:
    """Run `call(token, seconds)` on a worker thread; on cancellation stop it, then re-raise.

    `call` takes the sysvmq_token that cancels it, and must leave the queue as it
    found it when it fails or is cancelled. It waits at most `seconds`, then raises
    StillWaiting if its own deadline has not come: it is called again while its event
    loop is there, and a worker whose loop was closed (with the call pending, not
    cancelled) ends within ALIVE_SECONDS, having done nothing. Runs under asyncio or
    trio. (Receives wait in line instead, sysvmq.aioline: one thread for many.)
    """
    runner = current_runner()
    job = Job(runner.signal())
    start(runner, job, lambda token: while_alive(runner, call, token))
    try:
        await runner.wait(job.done, None)
    except GeneratorExit:  # the coroutine is being destroyed (its loop closed): it may not wait
        cancel(job.token)
        raise
    except BaseException:  # cancelled (asyncio, trio), or KeyboardInterrupt delivered here
        await stop(runner, job)
        raise
    return unwrapped(job.outcome)  # type: ignore[no-any-return]


def while_alive(
    runner: Runner,
    call: Callable[[Any, float], _T],
    token: Any,
    waited: Type[BaseException] = StillWaiting,
) -> _T:  # in the worker
    """`call(token, ALIVE_SECONDS)` again and again until it returns, or raises what it raises,
    but for `waited` (it waited as long as it was asked): then the worker looks whether its
    event loop is still there, and raises Gone once it is not."""
    while True:
        try:
            return call(token, ALIVE_SECONDS)
        except waited:
            if not runner.alive():
                raise Gone from None


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
