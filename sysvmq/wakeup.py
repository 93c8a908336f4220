"""The signal that interrupts a blocked msgsnd/msgrcv.

The kernel has no timed msgrcv and no file descriptor to wait on, so a call
that must stop waiting (its timeout expired, its handle was closed, its async
task was cancelled) is interrupted by a signal sent to its own thread. sysvmq
takes one real-time signal whose disposition is the default, installs an empty
handler for it (the highest free one, SIGRTMAX first), and checks each time it
arms a wake-up that nobody else has taken it over since.

Choose another signal with the environment variable ``SYSVMQ_WAKEUP_SIGNAL``
(a number, ``SIGRTMIN+N``, ``SIGRTMAX-N``, ``SIGUSR1`` or ``SIGUSR2``) read at
import, or with :func:`set_wakeup_signal`.
"""

import errno
import os
import re
import signal
from typing import Union

from sysvmq._sysvmq_cffi import lib
from sysvmq.errors import SysVMQError

__all__ = ["wakeup_signal", "set_wakeup_signal", "use_helper_thread", "signal_from_name"]

ENV_SIGNAL = "SYSVMQ_WAKEUP_SIGNAL"
ENV_TIMER = "SYSVMQ_TIMER"


def _claim(signum: int) -> int:
    r = lib.sysvmq_set_wakeup_signal(signum)
    if r == -errno.EBUSY:
        what = f"signal {signum}" if signum else "every real-time signal"
        raise SysVMQError(
            errno.EBUSY,
            f"{what} already has a handler; choose a free one with "
            f"sysvmq.set_wakeup_signal() or {ENV_SIGNAL}",
        )
    if r < 0:
        raise ValueError(
            f"signal {signum} cannot be the wake-up signal: use a real-time signal "
            "(SIGRTMIN..SIGRTMAX) or SIGUSR1/SIGUSR2"
        )
    return r


def wakeup_signal() -> int:
    """The signal number sysvmq wakes blocked calls with, choosing it if none is yet."""
    return lib.sysvmq_wakeup_signal() or _claim(0)


def set_wakeup_signal(signum: Union[int, str]) -> int:
    """Wake blocked calls with `signum` (a number or a name such as ``"SIGRTMIN+2"``).

    The signal must have its default disposition (or already be sysvmq's). Returns
    the number. Calls already blocked keep the signal they armed with.
    """
    number = signal_from_name(signum) if isinstance(signum, str) else signum
    if isinstance(number, bool) or not isinstance(number, int):
        raise TypeError(f"signum must be an int or a signal name, not {type(signum).__name__}")
    if number <= 0:
        raise ValueError(f"signal {number} is no signal")
    return _claim(number)


def use_helper_thread(on: bool) -> bool:
    """Wake timed calls from one helper thread instead of per-call POSIX timers.

    The helper thread is what platforms without thread-directed timers (macOS)
    always use; ``SYSVMQ_TIMER=thread`` selects it at import. Returns the previous
    setting.
    """
    r = lib.sysvmq_use_helper_thread(1 if on else 0)
    if r < 0:
        raise SysVMQError(-r, "this platform has no thread-directed timers; the helper thread is the only way")
    return bool(r)


def signal_from_name(name: str) -> int:
    """Parse ``"40"``, ``"SIGRTMIN+3"``, ``"SIGRTMAX-1"`` or ``"SIGUSR2"``."""
    text = name.strip().upper()
    if text.isdigit():
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
    """Apply ``SYSVMQ_WAKEUP_SIGNAL`` and ``SYSVMQ_TIMER`` (run once at import)."""
    chosen = os.environ.get(ENV_SIGNAL)
    if chosen:
        set_wakeup_signal(chosen)
    timer = os.environ.get(ENV_TIMER)
    if timer:
        if timer not in ("thread", "timer"):
            raise ValueError(f"{ENV_TIMER} must be 'thread' or 'timer', not {timer!r}")
        use_helper_thread(timer == "thread")
