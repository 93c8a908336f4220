"""The ``sysvmq`` logger: what the wake-up machinery decided, at debug level.

C cannot call Python's logging, so the C side notes its decisions (which wake-up
signal it claimed and why it passed others over, a signal claimed again after the
application reset it, a waiter moved to another signal, a wait that polls, the
helper thread starting, a zero-length message an async wait put back) and
:func:`report` turns the notes into log records. It runs on slow paths only: when a
handle is opened or closed, when a call raises, when an async call's worker thread
finishes a wait, and in :func:`sysvmq.wakeup_signal`; never on the per-message paths.

The library adds no handler: with logging unconfigured, debug records go nowhere.
Logging never raises into the caller: a handler that fails is ignored here, and a
handler that itself uses sysvmq (or a signal handler that does, while a report is
being written) does not report again from inside the report.
"""

import errno
import logging
import os
import signal
import threading
from typing import Any, Dict, List, Tuple

from sysvmq._sysvmq_cffi import ffi, lib

__all__ = ["debug", "logger", "report", "signal_name"]

logger = logging.getLogger("sysvmq")

_ROOM = 64  # as many notes as the C side keeps
_reporting = threading.Lock()  # held by the one thread that reports, which alone uses the memory below
_events = ffi.new("sysvmq_event[]", _ROOM)
_dropped = ffi.new("long *")

_WHY = {
    lib.SYSVMQ_WHY_HANDLED: "the application handles it",
    lib.SYSVMQ_WHY_IGNORED: "the application ignores it (SIG_IGN)",
    lib.SYSVMQ_WHY_BLOCKED: "the thread blocks it",
    lib.SYSVMQ_WHY_REPLACED: "it is the one being replaced",
}


def _forget_lock() -> None:
    global _reporting
    _reporting = threading.Lock()  # a thread that held it does not exist in the child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_lock)


def signal_name(signum: int) -> str:
    """``SIGURG``, ``SIGRTMAX-1``, ``SIGRTMIN+2``: how the README and SYSVMQ_WAKEUP_SIGNAL spell it."""
    low, high = getattr(signal, "SIGRTMIN", 0), getattr(signal, "SIGRTMAX", -1)
    if low <= signum <= high:
        if high - signum <= signum - low:
            return "SIGRTMAX" if signum == high else f"SIGRTMAX-{high - signum}"
        return "SIGRTMIN" if signum == low else f"SIGRTMIN+{signum - low}"
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


_inside = threading.local()  # .active: this thread is in debug(), in a handler perhaps


def debug(message: str, *args: Any) -> None:
    """logger.debug, except that a failing handler never reaches the caller, and a handler
    that uses sysvmq logs nothing of its own from inside this record (no recursion)."""
    if not logger.isEnabledFor(logging.DEBUG) or getattr(_inside, "active", False):
        return
    _inside.active = True
    try:
        logger.debug(message, *args)
    except Exception:
        pass  # a broken handler must not fail a call that succeeded
    except BaseException:
        # No signal handler runs outside the main thread: there a handler raised this
        # (SystemExit, say), and the call's own outcome must not be replaced by it.
        if threading.current_thread() is threading.main_thread():
            raise
    finally:
        _inside.active = False


def _times(count: int) -> str:
    return "" if count == 1 else f" ({count} times)"


def _passed_over(skipped: List[Tuple[int, int]]) -> str:
    by_reason: Dict[str, List[str]] = {}
    for signo, why in skipped:
        by_reason.setdefault(_WHY.get(why, "taken"), []).append(signal_name(signo))
    return "; ".join(f"{', '.join(names)}: {why}" for why, names in by_reason.items())


def _line(event: Any, skipped: List[Tuple[int, int]]) -> str:
    kind, signo, detail, count = event.kind, event.signo, event.detail, event.count
    name = signal_name(signo)
    if kind == lib.SYSVMQ_EV_CHOSEN:
        why = f"; passed over {_passed_over(skipped)}" if skipped else ""
        if detail:
            previous = signal_name(detail)
            return f"wake-up signal: moved from {previous} to {name}, the application took {previous}{why}"
        return f"wake-up signal: claimed {name}{why or ' (the first candidate)'}"
    if kind == lib.SYSVMQ_EV_NONE_FREE:
        return (
            f"wake-up signal: none is free for this thread ({_passed_over(skipped)}); the first wait "
            "that one can reach chooses it, and waits that none can reach poll"
        )
    if kind == lib.SYSVMQ_EV_RECLAIMED:
        return f"wake-up signal: {name} was reset to SIG_DFL; claimed again{_times(count)}"
    if kind == lib.SYSVMQ_EV_STAND_IN:
        return f"a thread that blocks the wake-up signal {signal_name(detail)} waits with {name} instead{_times(count)}"
    if kind == lib.SYSVMQ_EV_SWITCHED:
        failed = (
            "the application took it"
            if not event.value
            else f"it could not be sent ({os.strerror(event.value)}; RLIMIT_SIGPENDING?)"
            if event.value == errno.EAGAIN
            else f"it could not be sent ({os.strerror(event.value)})"
        )
        then = f"woken with {signal_name(detail)} instead" if detail else "no other free signal can reach it"
        return f"a waiting thread's signal {name}: {failed}; {then}{_times(count)}"
    if kind == lib.SYSVMQ_EV_POLLING:
        if detail == lib.SYSVMQ_WHY_NO_HELPER:
            why = f"the helper thread that keeps deadlines could not start ({os.strerror(event.value)})"
        else:
            why = "no wake-up signal can reach its thread (it blocks, or the application took, every candidate)"
        return f"a wait polls (every 50 µs growing to 2 ms) instead of sleeping in the kernel: {why}{_times(count)}"
    if kind == lib.SYSVMQ_EV_HELPER:
        return "helper thread started: it keeps the deadlines of timed waits that have to block"
    if kind == lib.SYSVMQ_EV_RETURNED:
        return (
            f"an async receive's wait took a zero-length message of type {event.value} and put it back "
            f"at the end of the queue{_times(count)}"
        )
    return f"unknown event {kind}"  # pragma: no cover - the C side notes only the kinds above


def report() -> None:
    """Log what the C side noted since the last report (a few microseconds when nothing)."""
    if not _reporting.acquire(blocking=False):
        return  # another thread reports, or this one is inside a report (a handler, a signal handler)
    try:
        events, dropped = _events, _dropped
        skipped: List[Tuple[int, int]] = []
        while True:
            n = lib.sysvmq_take_events(events, _ROOM, dropped)
            if dropped[0]:
                debug("%d more events were not recorded (too many between two reports)", dropped[0])
            for i in range(n):
                event = events[i]
                if event.kind == lib.SYSVMQ_EV_SKIPPED:
                    skipped.append((event.signo, event.detail))
                    continue
                if logger.isEnabledFor(logging.DEBUG):
                    debug("%s", _line(event, skipped))
                skipped = []
            if n < _ROOM:
                return
    finally:
        _reporting.release()
