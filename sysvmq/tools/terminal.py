"""The terminal under ``sysvmq watch``: the alternate screen with the cursor hidden and
echo off, restored on every way out; and one wait for the next refresh, a key or a signal."""

import os
import select
import signal
import sys
import termios
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

from sysvmq.tools.output import OutputClosed
from sysvmq.tools.signals import STOP_SIGNALS, Handlers, heeded
from sysvmq.tools.streams import write_all

__all__ = ["output_fd", "Happened", "Events", "Screen"]

ENTER = "\x1b[?1049h\x1b[?25l"  # the alternate screen, the cursor hidden
LEAVE = "\x1b[?25h\x1b[?1049l"  # the cursor shown, the screen the shell had


def output_fd() -> Tuple[int, Optional[str]]:
    """Standard output's file descriptor and encoding; OutputClosed if it cannot be written."""
    stream = sys.stdout
    try:
        if stream is None:
            raise OSError("closed")
        stream.flush()
        fd = stream.fileno()
        os.fstat(fd)
    except (OSError, ValueError, AttributeError) as e:
        raise OutputClosed(f"standard output cannot be written ({e})") from None
    return fd, getattr(stream, "encoding", None)


def _foreground_terminal(fd: int) -> bool:
    """Whether `fd` is a terminal this process may configure and read (it is in the
    foreground: a background job would be stopped by SIGTTOU or SIGTTIN)."""
    try:
        return os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False


class Happened(NamedTuple):
    """What ended a wait: a stop signal (0 if none), `q` typed, a suspend (Ctrl-Z), a redraw
    (resize, continue)."""

    stop: int
    quit: bool
    suspend: bool
    redraw: bool


class Events:
    """SIGINT, SIGTERM and SIGHUP, unblocked if the parent left them blocked, end the watch
    between refreshes; one the parent set to be ignored (nohup) stays ignored. With `keys`
    (a live view), also SIGWINCH, SIGCONT, SIGTSTP, and `q` on a terminal standard input."""

    STOP = STOP_SIGNALS

    def __init__(self, keys: bool) -> None:
        self.keys = keys
        self.keys_fd: Optional[int] = None
        self.pending: List[int] = []

    def _handle(self, signum: int, frame: Any) -> None:
        self.pending.append(signum)
        try:
            os.write(self.wake_write, b"\0")
        except OSError:
            pass  # the pipe is full: a wake-up is waiting already

    def _watched(self) -> Sequence[int]:
        wanted = [*self.STOP, signal.SIGTSTP] if self.keys else list(self.STOP)
        chosen = heeded(wanted)
        return [*chosen, signal.SIGWINCH, signal.SIGCONT] if self.keys else chosen

    def __enter__(self) -> "Events":
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)
        if self.keys and sys.stdin is not None and _foreground_terminal(0):
            self.keys_fd = 0
        self.handlers = Handlers(self._watched(), self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.handlers.restore()
        os.close(self.wake_read)
        os.close(self.wake_write)

    def wait(self, timeout: float) -> Happened:
        """Wait up to `timeout` seconds for a signal or a key."""
        ready: List[int] = []
        if not self.pending:
            # poll(), not select(): the wake-up pipe may be above descriptor 1023, out of select's range.
            poller = select.poll()
            for fd in [self.wake_read] if self.keys_fd is None else [self.wake_read, self.keys_fd]:
                poller.register(fd, select.POLLIN)
            ready = [fd for fd, _ in poller.poll(timeout * 1000)]
        try:
            while os.read(self.wake_read, 512):
                pass
        except BlockingIOError:
            pass
        typed = b""
        if self.keys_fd is not None and self.keys_fd in ready:
            typed = os.read(self.keys_fd, 64)
            if not typed:
                self.keys_fd = None  # end of input: no more keys
        pending, self.pending = self.pending, []
        stop = next((signum for signum in pending if signum in self.STOP), 0)
        suspend = signal.SIGTSTP in pending
        redraw = suspend or signal.SIGWINCH in pending or signal.SIGCONT in pending
        return Happened(stop, b"q" in typed.lower(), suspend, redraw)

    def stop_self(self) -> None:
        """Stop as Ctrl-Z asks (the terminal restored first by the caller), until continued."""
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)
        signal.signal(signal.SIGTSTP, self._handle)


class Screen:
    """Writes to standard output's descriptor. `live`: the alternate screen, the cursor
    hidden and, on a foreground terminal standard input, echo and line editing off; all
    restored by `suspend()` and on exit."""

    def __init__(self, fd: int, live: bool, encoding: Optional[str] = None) -> None:
        self.fd = fd
        self.live = live
        self.encoding = encoding or "ascii"
        self.saved: Optional[List[Any]] = None
        self.shown = False

    def __enter__(self) -> "Screen":
        self.resume()
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.suspend()
        except OSError:
            pass  # the terminal is gone: nothing left to restore

    def resume(self) -> None:
        """Enter the live view (again, after a suspend or a stop by another hand)."""
        if not self.live:
            return
        if _foreground_terminal(0):
            attributes = termios.tcgetattr(0)
            if self.saved is None:
                self.saved = termios.tcgetattr(0)
            attributes[3] &= ~(termios.ECHO | termios.ICANON)
            attributes[6][termios.VMIN] = 1
            attributes[6][termios.VTIME] = 0
            termios.tcsetattr(0, termios.TCSANOW, attributes)
        self._write(ENTER)
        self.shown = True

    def suspend(self) -> None:
        """Give the terminal back as it was."""
        if self.saved is not None:
            saved, self.saved = self.saved, None
            if _foreground_terminal(0):
                termios.tcsetattr(0, termios.TCSADRAIN, saved)
        if self.shown:
            self.shown = False
            self._write(LEAVE)

    def size(self) -> Tuple[int, int]:
        """(columns, lines) now; 80x24 where the terminal cannot tell."""
        try:
            size = os.get_terminal_size(self.fd)
        except OSError:
            return 80, 24
        return size.columns or 80, size.lines or 24

    def draw(self, lines: Sequence[str]) -> None:
        """Paint `lines` from the top left, clearing what the last frame left."""
        self._write("\x1b[H" + "\n".join(line + "\x1b[K" for line in lines) + "\x1b[J")

    def write_lines(self, lines: Sequence[str]) -> None:
        """Plain lines, written at once (a reader gets whole lines, one refresh at a time)."""
        if lines:
            self._write("".join(line + "\n" for line in lines))

    def _write(self, text: str) -> None:
        write_all(self.fd, text.encode(self.encoding, "replace"))
