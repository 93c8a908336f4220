"""The signal that interrupts a blocked msgsnd/msgrcv.

The kernel has no timed msgrcv and no file descriptor to wait on, so a call
that must stop waiting (its timeout expired, its handle was closed, its async
task was cancelled) is interrupted by a signal sent to its own thread, by the
helper thread (deadlines) or by the thread that calls ``close()`` or cancels.

sysvmq takes SIGURG (then, if the application handles SIGURG, the real-time
signals from SIGRTMAX down): the first whose disposition is the default. SIGURG
is ignored by default, so a wake-up that meets a disposition the application
reset to ``SIG_DFL`` is dropped instead of killing the process. SIGWINCH is never
taken: curses installs its resize handler only where it finds ``SIG_DFL``. An
empty handler is installed on it.

The application keeps its signals. A signal a thread blocks is never unblocked
(it may be one the application takes with ``sigwait`` or ``signalfd``): such a
thread is woken with another free signal it does not block, or, if it blocks
them all, waits by polling. Before every signal it sends, sysvmq checks that the
handler is still its own: one reset to ``SIG_DFL`` is claimed again, one the
application took over (its own handler, or ``SIG_IGN``) is left alone and the
waiting thread is woken with another free signal. A call that no signal can
reach (every candidate taken, or no helper thread could start) waits by polling.

The signal is chosen, and its handler installed, when the first queue handle is
opened; the ``sysvmq`` logger says at debug level which one and why.

Choose the signal with the environment variable ``SYSVMQ_WAKEUP_SIGNAL`` (a
number, ``SIGRTMIN+N``, ``SIGRTMAX-N``, ``SIGURG``, ``SIGWINCH``, ``SIGUSR1`` or
``SIGUSR2``), read when the first queue handle is opened, or with
:func:`set_wakeup_signal`.
"""

import errno
import os
import re
import signal
import threading
from typing import Optional, Tuple, Union

from sysvmq import _log
from sysvmq._binding import system
from sysvmq._integers import INT_MAX, INT_MIN, check_int, type_name
from sysvmq.errors import SysVMQError

__all__ = ["wakeup_signal", "set_wakeup_signal", "signal_from_name"]

ENV_SIGNAL = "SYSVMQ_WAKEUP_SIGNAL"

_configured = False
#: Held while a signal is claimed and _configured set with it: the first open decides that no
#: choice was made, then claims the environment's signal, and a set_wakeup_signal() in another
#: thread between the two would be overridden by the environment it outranks. Reentrant: a
#: signal handler that opens a queue may run in the thread that holds it.
_choosing = threading.RLock()


def _forget_lock() -> None:
    global _choosing
    _choosing = threading.RLock()  # a thread that held it does not exist in the child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_lock)


def _claim(signum: int) -> int:
    r = system.claim_wakeup_signal(signum)
    if r == -errno.EBUSY:
        what = f"signal {signum}" if signum else "every signal sysvmq may choose (SIGURG, SIGRTMIN..SIGRTMAX)"
        raise SysVMQError(
            errno.EBUSY,
            f"{what} already has a handler or is ignored; choose a free one with "
            f"sysvmq.set_wakeup_signal() or {ENV_SIGNAL}",
        )
    if r < 0:
        raise ValueError(
            f"signal {signum} cannot be the wake-up signal: use SIGURG, SIGWINCH, SIGUSR1, "
            "SIGUSR2 or a real-time signal (SIGRTMIN..SIGRTMAX)"
        )
    return r


def wakeup_signal() -> int:
    """The signal number sysvmq wakes blocked calls with, choosing it if none is yet."""
    configure_from_environment()
    try:
        return system.current_wakeup_signal() or _claim(0)
    finally:
        system.report()


def set_wakeup_signal(signum: Union[int, str]) -> int:
    """Wake blocked calls with `signum` (a number or a name such as ``"SIGRTMIN+2"``).

    The signal must have its default disposition (or already be sysvmq's). Returns
    the number. Calls already blocked keep the signal they wait with.

    :param signum: the signal: its number, or its name as ``SYSVMQ_WAKEUP_SIGNAL``
        takes it (``"SIGURG"``, ``"SIGRTMAX-1"``, ``"SIGRTMIN+2"``).
    """
    global _configured
    number = _signal_number(signum)
    with _choosing:
        chosen = _claim(number)
        _configured = True  # an explicit choice outranks the environment
    _chosen(chosen, "set by set_wakeup_signal()")
    return chosen


def _signal_number(signum: Union[int, str]) -> int:
    if isinstance(signum, str):
        number = signal_from_name(signum)
    else:
        try:
            number = check_int("signum", signum, INT_MIN, INT_MAX)
        except TypeError:
            raise TypeError(f"signum must be an int or a signal name, not {type_name(signum)}") from None
    if number <= 0:
        raise ValueError(f"signal {number} is no signal")
    return number


def _chosen(signum: int, how: str) -> None:
    system.report()
    _log.debug("wake-up signal: %s, %s", _log.signal_name(signum), how)


def signal_from_name(name: str) -> int:
    """Parse ``"40"``, ``"SIGRTMIN+3"``, ``"SIGRTMAX-1"``, ``"SIGURG"`` or ``"USR2"``."""
    text = name.strip().upper()
    if text.isascii() and text.isdigit():
        return int(text)
    match = re.fullmatch(r"(?:SIG)?RT(MIN|MAX)(?:([+-])(\d+))?", text)
    if match and hasattr(signal, "SIGRTMIN"):
        base = signal.SIGRTMIN if match.group(1) == "MIN" else signal.SIGRTMAX
        offset = int(match.group(3) or 0)
        return int(base + offset if match.group(2) == "+" else base - offset)
    known = getattr(signal, text if text.startswith("SIG") else "SIG" + text, None)
    if isinstance(known, int):
        return int(known)
    raise ValueError(f"unknown signal name {name!r}")


def configure_from_environment() -> None:
    """Choose the wake-up signal, once: at the first handle opened, not at import, so a bad
    ``SYSVMQ_WAKEUP_SIGNAL`` is a one-line error where sysvmq is used (ValueError,
    SysVMQError). Each later call logs what the C side noted since (a handle is opened)."""
    global _configured
    if not _configured:
        with _choosing:
            # Asked again under the lock: a set_wakeup_signal() may have returned meanwhile.
            claimed = None if _configured else _from_environment()
            _configured = True
        if claimed is not None:
            _chosen(*claimed)
            return
    system.report()


def _from_environment() -> Optional[Tuple[int, str]]:
    """Claim the signal SYSVMQ_WAKEUP_SIGNAL names: the signal and how it was chosen. Without
    the variable the C side chooses, and notes its choice for the log: None."""
    text = os.environ.get(ENV_SIGNAL)
    if not text:
        # Claimed here rather than at the first wait, so that the choice is logged where it
        # is made; never one this thread blocks (the application may sigwait it).
        system.choose_wakeup_signal()
        return None
    try:
        return _claim(_signal_number(text)), f"from {ENV_SIGNAL}={text!r}"
    except SysVMQError as e:
        raise SysVMQError(e.errno or errno.EBUSY, f"{ENV_SIGNAL}={text!r}: {e.detail}") from None
    except ValueError as e:
        raise ValueError(f"{ENV_SIGNAL}={text!r}: {e}") from None
