"""The ``sysvmq`` logger: what the wake-up machinery decided, at debug level.

C cannot call Python's logging, so the C side notes its decisions (which wake-up
signal it claimed and why it passed others over, a signal claimed again after the
application reset it, a waiter moved to another signal, a wait that polls, the
helper thread starting, a zero-length message an async wait returned to its queue);
sysvmq._binding.system.report() reads the notes and this module turns them into log
records. Reports run on slow paths only: when a handle is opened or closed, when a call
raises, when an async call's worker thread finishes a wait, and in
:func:`sysvmq.wakeup_signal`; never on the per-message paths.

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
from typing import Any, Callable, Dict, List

__all__ = ["NotesWriter", "debug", "logger", "signal_name"]

logger = logging.getLogger("sysvmq")

_WHY = {
    "handled": "the application handles it",
    "ignored": "the application ignores it (SIG_IGN)",
    "blocked": "the thread blocks it",
    "replaced": "it is the one being replaced",
}


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


class _Note:
    """One note of the C side (csrc/types.h: SYSVMQ_EV_*), its kind and reason by name."""

    __slots__ = ("count", "detail", "kind", "signo", "value", "why")

    def __init__(self, kind: str, signo: int, detail: int, why: str, value: int, count: int) -> None:
        self.kind, self.signo, self.detail, self.why, self.value, self.count = kind, signo, detail, why, value, count


def _passed_over(skipped: List[_Note]) -> str:
    by_reason: Dict[str, List[str]] = {}
    for note in skipped:
        by_reason.setdefault(_WHY.get(note.why, "taken"), []).append(signal_name(note.signo))
    return "; ".join(f"{', '.join(names)}: {why}" for why, names in by_reason.items())


def _chosen(note: _Note, skipped: List[_Note]) -> str:
    name = signal_name(note.signo)
    why = f"; passed over {_passed_over(skipped)}" if skipped else ""
    if note.detail:
        previous = signal_name(note.detail)
        return f"wake-up signal: moved from {previous} to {name}, the application took {previous}{why}"
    return f"wake-up signal: claimed {name}{why or ' (the first candidate)'}"


def _none_free(note: _Note, skipped: List[_Note]) -> str:
    return (
        f"wake-up signal: none is free for this thread ({_passed_over(skipped)}); the first wait "
        "that one can reach chooses it, and waits that none can reach poll"
    )


def _reclaimed(note: _Note, skipped: List[_Note]) -> str:
    return f"wake-up signal: {signal_name(note.signo)} was reset to SIG_DFL; claimed again{_times(note.count)}"


def _stand_in(note: _Note, skipped: List[_Note]) -> str:
    blocked, used = signal_name(note.detail), signal_name(note.signo)
    return f"a thread that blocks the wake-up signal {blocked} waits with {used} instead{_times(note.count)}"


def _switched(note: _Note, skipped: List[_Note]) -> str:
    if not note.value:
        failed = "the application took it"
    elif note.value == errno.EAGAIN:
        failed = f"it could not be sent ({os.strerror(note.value)}; RLIMIT_SIGPENDING?)"
    else:
        failed = f"it could not be sent ({os.strerror(note.value)})"
    then = f"woken with {signal_name(note.detail)} instead" if note.detail else "no other free signal can reach it"
    return f"a waiting thread's signal {signal_name(note.signo)}: {failed}; {then}{_times(note.count)}"


def _polling(note: _Note, skipped: List[_Note]) -> str:
    if note.why == "no helper":
        why = f"the helper thread that keeps deadlines could not start ({os.strerror(note.value)})"
    else:
        why = "no wake-up signal can reach its thread (it blocks, or the application took, every candidate)"
    return f"a wait polls (every 50 µs growing to 2 ms) instead of sleeping in the kernel: {why}{_times(note.count)}"


def _helper(note: _Note, skipped: List[_Note]) -> str:
    return "helper thread started: it keeps the deadlines of timed waits that have to block"


def _returned(note: _Note, skipped: List[_Note]) -> str:
    return (
        f"an async receive's wait took a zero-length message of type {note.value} and put it back "
        f"at the end of the queue{_times(note.count)}"
    )


_LINES: Dict[str, Callable[[_Note, List[_Note]], str]] = {
    "chosen": _chosen,
    "none free": _none_free,
    "reclaimed": _reclaimed,
    "stand-in": _stand_in,
    "switched": _switched,
    "polling": _polling,
    "helper": _helper,
    "returned": _returned,
}


class NotesWriter:
    """Turns the C side's notes, in the order they were taken, into debug records: the
    signals passed over ("skipped") are said with the choice they led to."""

    __slots__ = ("skipped",)

    def __init__(self) -> None:
        self.skipped: List[_Note] = []

    def dropped(self, count: int) -> None:
        if count:
            debug("%d more events were not recorded (too many between two reports)", count)

    def note(self, kind: str, signo: int, detail: int, why: str, value: int, count: int) -> None:
        note = _Note(kind, signo, detail, why, value, count)
        if kind == "skipped":
            self.skipped.append(note)
            return
        if logger.isEnabledFor(logging.DEBUG):
            line = _LINES.get(kind)
            debug("%s", line(note, self.skipped) if line else f"unknown event {kind}")
        self.skipped = []
