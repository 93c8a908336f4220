"""What a command makes for its own use (the queues of ``demo`` and ``bench``), removed on
every way out: the end, an error, Ctrl-C, SIGTERM (`timeout`), SIGHUP (a closed terminal).
SIGKILL cannot be caught: a queue it leaves stays in the kernel until `sysvmq rm --id ID`
(or a reboot)."""

from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

from sysvmq.tools.signals import STOP_SIGNALS, Handlers, heeded

__all__ = ["Stopped", "Cleanup"]

T = TypeVar("T")


class Stopped(BaseException):
    """A stop signal ended the command: raised where it was, so that every `finally` runs.
    A BaseException, as KeyboardInterrupt: no `except Exception` takes it for an error."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"ended by signal {signum}")
        self.signum = signum


class Cleanup:
    """While entered, the first of SIGINT, SIGTERM and SIGHUP (but one the parent ignores) raises Stopped where the
    command is, unblocked if the parent left it blocked; while something is being made or
    removed (`made`), it waits for that to finish. Later signals raise nothing: the removals
    run to their end."""

    SIGNALS = STOP_SIGNALS

    def __init__(self) -> None:
        self.signum = 0
        self.raised = False
        self.holding = 0

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum:
            return
        self.signum = signum
        self._raise_unless_holding()

    def _raise_unless_holding(self) -> None:
        if self.signum and not self.holding and not self.raised:
            self.raised = True
            raise Stopped(self.signum)

    def _release(self) -> None:
        self.holding -= 1
        self._raise_unless_holding()

    def __enter__(self) -> "Cleanup":
        self.handlers = Handlers(heeded(self.SIGNALS), self._handle)  # `nohup sysvmq bench &`
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.handlers.restore()

    @contextmanager
    def held(self) -> Iterator[None]:
        """A short block no stop signal interrupts: one that comes meanwhile is raised at its
        end. For library code that a raise could leave with a lock taken (subprocess's poll)."""
        self.holding += 1
        try:
            yield
        finally:
            self._release()

    @contextmanager
    def made(self, make: Callable[[], T], remove: Callable[[T], object]) -> Iterator[T]:
        """What `make()` returns, given to `remove` on the way out of the block: no stop
        signal can come between its making and the promise to remove it."""
        self.holding += 1
        try:
            thing = make()
        except BaseException:
            self.holding -= 1
            raise
        try:
            self._release()
            yield thing
        finally:
            self.holding += 1
            try:
                remove(thing)
            finally:
                self._release()
