"""Async receives in line: one waiting thread per (handle, type, options) per event loop.

The async receives of one event loop (or trio run) that select the same messages (the
same handle, type and options) wait in one line, in the order they came. Only the line
has a worker thread, which waits as sysvmq.aio describes: until a matching message is
there, taking none. When one is there, the coroutine at the head of the line gets the
turn: it is woken and takes the message with IPC_NOWAIT in the loop's thread, then hands
the turn to the next in line, which tries too, so a burst is taken with no thread
hand-over per message. A coroutine whose take finds nothing (another receiver was
first) goes back to the head of the line and the worker waits again. So a message wakes
one thread and one coroutine however many wait, and the process holds one thread per
line. A receive that finds a line for its messages joins it at the end without trying
first: the line is served in order. A receive with a timeout of 0 joins no line: it takes
a message that is there, or times out at once, as the blocking receive does.

Each coroutine keeps its own timeout; the worker has none. A coroutine that is cancelled
or times out leaves the line and takes nothing; the last one to leave stops the worker
and waits until it has left the kernel (as sysvmq.aio's calls do), so that once it has
finished, nothing of it takes from the queue. If the worker had to take a zero-length
message that it could not put back, the next in line gets it, or, with nobody left, the
coroutine that stopped it.

A worker whose event loop was closed while coroutines still waited in its line (or whose
trio run is over) finds it out within aio.ALIVE_SECONDS: it wakes that often to look, and
then ends, taking nothing.
"""

import collections
import copy
import os
from typing import Any, Callable, Deque, Dict, Hashable, Optional, Tuple, TypeVar

from sysvmq import aio
from sysvmq._binding.system import cancel
from sysvmq.errors import QueueTimeoutError

__all__ = ["receive_in_line"]

_T = TypeVar("_T")

#: What wakes a coroutine in line: (TURN, None): try a take; (HANDED, message): a message
#: the worker had to take; (FAILED, exception): raise it.
_TURN, _HANDED, _FAILED = range(3)
_News = Tuple[int, Any]


def _own(error: BaseException) -> BaseException:
    """A copy of `error` for one coroutine: an exception raised in many would gather the
    tracebacks of them all (and what one caller adds to it, the others would see)."""
    try:
        return copy.copy(error)
    except Exception:  # an exception that cannot be rebuilt from its arguments
        return error


class _Entry:
    """One coroutine in line: what it was woken with (None: still waiting)."""

    __slots__ = ("news", "signal")

    def __init__(self, signal: Any) -> None:
        self.signal = signal
        self.news: Optional[_News] = None


#: Every line with a coroutine in it, a worker running or the turn handed out, by
#: (event loop or trio token, handle, type, flags). Changed only in the loop's thread,
#: but for a worker that finds its loop closed (a dict operation is atomic).
_lines: Dict[Tuple[object, Hashable, int, int], "_Line"] = {}
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_lines.clear)  # a forked child has no worker and no loop of these


class _Line:
    """The receives of one event loop that select the same messages, in order; the
    methods run in the loop's thread but for _work."""

    __slots__ = ("entries", "return_to_queue", "job", "key", "orphan", "runner", "turn_out", "wait")

    def __init__(
        self, key: Any, runner: Any, wait: Callable[[Any, float], Any], return_to_queue: Callable[[Any], bool]
    ):
        self.key = key
        self.runner = runner
        self.wait = wait
        self.return_to_queue = return_to_queue
        self.entries: Deque[_Entry] = collections.deque()
        self.job: Optional[aio.Job] = None  # the worker, while it runs
        self.turn_out = False  # a woken coroutine has the turn: no worker runs meanwhile
        self.orphan: Any = None  # a message the stopped worker took, that nobody else could have

    def join(self, entry: _Entry, front: bool = False) -> None:
        if front:
            self.entries.appendleft(entry)
        else:
            self.entries.append(entry)
        if self.job is None and not self.turn_out:
            self._start()

    def _start(self) -> None:
        job = self.job = aio.Job(self.runner.signal())
        try:
            aio.start(self.runner, job, self._wait_alive, self._finished, self._gone)
        except BaseException as error:  # no thread: nobody in line could be woken
            self.job = None
            self._fail_all(error)

    def _fail_all(self, error: BaseException) -> None:
        entries, self.entries = self.entries, collections.deque()
        for entry in entries:
            self._wake(entry, (_FAILED, _own(error)))
        self._forget_if_idle()

    def _wake(self, entry: _Entry, news: _News) -> None:
        entry.news = news
        self.runner.fire(entry.signal)

    def hand_on(self, news: _News = (_TURN, None)) -> None:
        """Give the turn to the next in line; with nobody left, the line rests."""
        if self.entries:
            self.turn_out = True
            self._wake(self.entries.popleft(), news)
            return
        self.turn_out = False
        if news[0] == _HANDED and not self.return_to_queue(news[1]):
            self.orphan = news[1]
        self._forget_if_idle()

    def _forget_if_idle(self) -> None:
        if not self.entries and self.job is None and not self.turn_out and _lines.get(self.key) is self:
            del _lines[self.key]

    def _wait_alive(self, token: Any) -> Any:  # in the worker thread
        """The line's wait, looking every aio.ALIVE_SECONDS whether its loop is still there
        (the wait raises QueueTimeoutError each time)."""
        return aio.while_alive(self.runner, self.wait, token, QueueTimeoutError)

    def _gone(self, outcome: Tuple[bool, Any]) -> None:  # in the worker thread
        """Nobody will run the line again: a message the worker had to take goes back."""
        if outcome[0] and outcome[1] is not None:
            self.return_to_queue(outcome[1])
        if _lines.get(self.key) is self:
            del _lines[self.key]

    def _finished(self, job: aio.Job) -> None:
        self.job = None
        succeeded, value = job.outcome
        if succeeded:
            self.hand_on((_TURN, None) if value is None else (_HANDED, value))
        elif not job.stopped:
            self._fail_all(value)  # closed, removed, no permission: every receive in line fails
        elif self.entries:  # stopped, but someone joined meanwhile
            self._start()
        else:
            self._forget_if_idle()

    def step_out(self, entry: _Entry) -> Optional[aio.Job]:
        """`entry`'s coroutine leaves the line, taking nothing: the worker it stopped
        (the last one in line stops it), if any."""
        if entry.news is None:
            self.entries.remove(entry)
        elif entry.news[0] != _FAILED:  # woken, but gone before its turn: the next one's
            self.hand_on(entry.news)
        job = self.job
        if job is None or self.entries:
            self._forget_if_idle()
            return None
        job.stopped = True
        cancel(job.token)
        return job

    async def leave(self, entry: _Entry) -> Tuple[Any, Optional[BaseException]]:
        """step_out(), then wait until the stopped worker has left the kernel: a message
        the coroutine must return after all (nobody else can have it), or None; and the
        cancellation that came meanwhile (aio.stop), or None."""
        job = self.step_out(entry)
        held = None if job is None else await aio.stop(self.runner, job)
        orphan, self.orphan = self.orphan, None
        self._forget_if_idle()
        return orphan, held


async def receive_in_line(
    key: Tuple[Hashable, int, int],
    take: Callable[[], Optional[_T]],
    wait: Callable[[Any, float], Optional[_T]],
    return_to_queue: Callable[[_T], bool],
    timeout: Optional[float],
    timed_out: Callable[[], BaseException],
) -> _T:
    """Take a message with `take()` (without waiting: None when none is there), waiting in
    the line of `key` (handle, type, flags) for one to come.

    `wait(token, seconds)` blocks in a worker until a message is there and takes none
    (None), or returns one it had to take; QueueTimeoutError after `seconds`.
    `return_to_queue(message)` puts such a message back without waiting: whether it could.
    After `timeout` seconds (None: forever), `timed_out()` is raised.
    """
    runner = aio.current_runner()
    full_key = (runner.ident(), *key)
    line = _lines.get(full_key)
    waits = timeout is None or timeout > 0
    # A call that waits in no line tries first; one that may not wait is in no line, as a
    # receive with a timeout of 0 is: it takes a message that is there, even with a line waiting.
    if line is None or not waits:
        message = take()
        if message is not None:
            return message
        if not waits:
            raise timed_out()
        line = _lines[full_key] = _Line(full_key, runner, wait, return_to_queue)
    deadline = None if timeout is None else runner.clock() + float(timeout)
    entry = _Entry(runner.signal())
    line.join(entry)
    while True:
        orphan = await _wait_in(line, entry, deadline, timed_out)
        if orphan is not None:  # it left the line, but nobody else can have this message
            return orphan  # type: ignore[no-any-return]
        message = _on_turn(line, entry, take)
        if message is not None:
            return message


def _on_turn(line: _Line, entry: _Entry, take: Callable[[], Optional[_T]]) -> Optional[_T]:
    """What `entry`'s coroutine does when woken: the message it returns, or None when another
    receiver was first (it is back at the head of the line, to wait again)."""
    kind, value = entry.news  # type: ignore[misc]  # woken: news is set
    if kind == _FAILED:
        raise value
    if kind == _HANDED:
        line.hand_on()
        return value  # type: ignore[no-any-return]
    try:
        message = take()
    except BaseException:
        line.hand_on()
        raise
    if message is None:
        entry.news, entry.signal = None, line.runner.signal()
        line.turn_out = False
        line.join(entry, front=True)
        return None
    line.hand_on()
    return message


async def _wait_in(
    line: _Line, entry: _Entry, deadline: Optional[float], timed_out: Callable[[], BaseException]
) -> Any:
    """Until `entry` is woken (None). Cancelled or timed out, it leaves the line and
    raises, or returns the message the stopped worker took that nobody else can have."""
    try:
        await line.runner.wait(entry.signal, deadline)
    except GeneratorExit:  # the coroutine is being destroyed (its loop closed): it may not wait
        line.step_out(entry)
        raise
    except BaseException:  # cancelled (asyncio, trio), or KeyboardInterrupt delivered here
        orphan, _ = await line.leave(entry)  # a cancellation meanwhile: this one stands for it
        if orphan is None:
            raise
        return orphan
    if entry.news is not None:
        return None
    orphan, held = await line.leave(entry)  # the deadline passed
    if orphan is not None:
        return orphan
    if held is not None:  # cancelled as it timed out: it was cancelled
        raise held
    raise timed_out()
