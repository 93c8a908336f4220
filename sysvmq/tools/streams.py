"""The command's standard streams: those the parent closed, the last flush of standard
output, and standard input read line by line as it arrives."""

import io
import os
import select
import sys
from typing import Any, Iterator

__all__ = [
    "InputClosed",
    "hold_closed_streams",
    "discard_stdout",
    "input_fd",
    "read_all",
    "lines_of",
    "write_all",
    "wait_on_stdout",
    "stderr_that_cannot_fail",
]


class InputClosed(Exception):
    """Standard input cannot be read (the parent closed it)."""


def hold_closed_streams() -> None:
    """Put /dev/null on the standard descriptors the parent closed (`2>&-`), before anything
    is opened: the next file opened would take the lowest free descriptor, and what is
    written to "standard error" would land in it. Without standard error, errors go nowhere
    (print() and argparse would fall back to standard output, among the records a script
    reads): the exit status says it. sys.stdin and sys.stdout stay None, so the commands
    can tell their stream is closed."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            # The lower descriptors are open by now: the lowest free one is `fd` itself.
            os.open(os.devnull, os.O_RDWR)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (the process's own stream, for its life)


def discard_stdout() -> None:
    """Point standard output at /dev/null once it cannot be written (the reader left, the
    disk is full): what sys.stdout still holds would otherwise fail the interpreter's last
    flush, which prints a warning and ends the process with status 120."""
    _discard(1)


def _discard(fd: int) -> None:
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


class _Unfailing:
    """Standard error that cannot fail the command: once it cannot be written (a full disk,
    `2>/dev/full`), it is pointed at /dev/null and what it was to say is dropped, and the
    exit status says what happened. An error raised while an error is reported would end
    the command with a traceback, or status 120 at the interpreter's last flush."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except OSError:
            _discard(2)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            _discard(2)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def stderr_that_cannot_fail() -> None:
    """Make sys.stderr an _Unfailing one."""
    sys.stderr = _Unfailing(sys.stderr)


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd`, waiting for room even where the parent left the
    descriptor non-blocking (O_NONBLOCK is shared with it: a full pipe or terminal is then
    EAGAIN, not a wait)."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            poller = select.poll()
            poller.register(fd, select.POLLOUT)
            poller.poll()  # POLLERR and POLLHUP too: the write that follows says what they are


class _Waiting(io.RawIOBase):
    """A descriptor each write goes to whole (write_all)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        write_all(self.fd, chunk)
        return len(chunk)


def wait_on_stdout() -> None:
    """Have sys.stdout wait for room where the parent left standard output non-blocking:
    print() would otherwise fail with EAGAIN on a full pipe or terminal."""
    stream = sys.stdout
    if stream is None or os.get_blocking(stream.fileno()):
        return
    stream.flush()
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(_Waiting(stream.fileno())),
        encoding=stream.encoding,
        errors=stream.errors,
        line_buffering=bool(stream.line_buffering),
    )


def input_fd() -> int:
    """Standard input's file descriptor; InputClosed if the parent closed it (`<&-`)."""
    if sys.stdin is None:
        raise InputClosed("standard input is closed: give the message as an argument, or something to read")
    return sys.stdin.fileno()


def read_all(fd: int, longest: int) -> bytes:
    """What `fd` holds up to its end, waiting for it even where the parent left the
    descriptor non-blocking (a read would find only what had come so far). More than
    `longest` bytes raises ValueError as soon as they are read: memory stays bounded by it
    (`yes | sysvmq send KEY`)."""
    data = bytearray()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        poller.poll()
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue  # another reader of a shared, non-blocking input took what poll() saw
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > longest:
            raise ValueError(
                f"standard input holds more than {longest} bytes: too long for one message (kernel.msgmax)"
            )


def lines_of(fd: int, stop_fd: int, longest: int) -> Iterator[bytes]:
    """The lines of `fd` as they arrive, each without its newline; the last one even without
    one. Ends at the end of input, or as soon as `stop_fd` is readable (a stop signal): no
    byte is read after that, and every byte read before is in a line given out. A line
    longer than `longest` bytes raises ValueError (memory stays bounded by it)."""
    pending = bytearray()
    poller = select.poll()  # not select(): a descriptor above 1023 (a parent's many open files) is out of its range
    poller.register(fd, select.POLLIN)
    poller.register(stop_fd, select.POLLIN)
    while True:
        ready = [ready_fd for ready_fd, _ in poller.poll()]
        if stop_fd in ready:
            break
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue  # another reader of a shared, non-blocking input took what poll() saw
        if not chunk:
            break
        pending += chunk
        start = 0
        end = pending.find(b"\n", start)
        while end >= 0:
            yield bytes(pending[start:end])
            start = end + 1
            end = pending.find(b"\n", start)
        del pending[:start]
        if len(pending) > longest:
            raise ValueError(f"a line of more than {longest} bytes cannot be one message (kernel.msgmax)")
    if pending:
        yield bytes(pending)
