"""The stop signals of the commands: whether the parent ignores one, and handlers set for
a while, then put back as they were."""

import signal
from typing import Any, Callable, List, Sequence

__all__ = ["STOP_SIGNALS", "ignored", "heeded", "Handlers"]

#: The signals that end a command: Ctrl-C, `kill` and `timeout`, a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def ignored(signum: int) -> bool:
    """Whether the parent set `signum` to be ignored. /proc says so on Linux where the
    interpreter does not (PyPy reports an inherited SIG_IGN as SIG_DFL)."""
    if signal.getsignal(signum) is signal.SIG_IGN:
        return True
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("SigIgn:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def heeded(signals: Sequence[int]) -> List[int]:
    """Those of `signals` the parent did not set to be ignored: one it did (`nohup`, a
    shell's background job) stays ignored, and the command gets no handler for it."""
    return [signum for signum in signals if not ignored(signum)]


class Handlers:
    """`handler` set for each of `signals`, and those unblocked if the parent left them
    blocked, until `restore()` puts back the handlers and the mask there were."""

    def __init__(self, signals: Sequence[int], handler: Callable[[int, Any], None]) -> None:
        self.previous = {signum: signal.signal(signum, handler) for signum in signals}
        self.mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)

    def restore_handlers(self) -> None:
        """The handlers back, the signals still unblocked (the next one acts at once)."""
        for signum, handler in self.previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self.previous = {}

    def restore(self) -> None:
        self.restore_handlers()
        signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)
