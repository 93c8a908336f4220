"""Standard output for ``sysvmq receive``: each message escaped onto one line, and
delivered before the next is taken; what cannot be delivered goes back to the queue."""

import errno
import os
import select
import stat
import sys
import time
import unicodedata
from typing import Any, Callable, Dict, Optional

from sysvmq._log import debug
from sysvmq.errors import SysVMQError, error_for
from sysvmq.queue import Message, MessageQueue
from sysvmq.tools.signals import STOP_SIGNALS, Handlers, heeded
from sysvmq.tools.streams import write_all

__all__ = ["Output", "OutputClosed", "StopSignals", "escape", "return_to_queue"]


class _Escapes(Dict[int, str]):
    """What each character is written as: control characters (C0, DEL, C1), backslash, and
    bytes that are not UTF-8 (decoded as lone surrogates) as escapes, so a sender cannot
    drive the operator's terminal and each message is one line; so are the line and
    paragraph separators, which end a line for str.splitlines(), and every format character
    (Unicode category Cf: bidirectional controls, which reorder what the terminal shows,
    zero-width and invisible ones, tags) and every other character Unicode says a renderer
    may draw as nothing (Default_Ignorable_Code_Point), which would make different payloads look alike.
    The rest as it is. Each character of the Basic Multilingual Plane is looked up once,
    then remembered (the others each time: a sender cannot grow this table without bound)."""

    def __missing__(self, code: int) -> str:
        if unicodedata.category(chr(code)) == "Cf" or code in _INVISIBLE:
            shown = f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
        else:
            shown = chr(code)
        if code <= 0xFFFF:
            self[code] = shown
        return shown


# Unicode's Default_Ignorable_Code_Point that is not Cf (unicodedata has no such property):
# the combining grapheme joiner, the Hangul fillers, the Khmer inherent vowels, the
# variation selectors (Mongolian ones too), and the reserved code points of the property,
# which may become format characters in a later Unicode than this Python knows (so may
# those of the invisible operators' block and of plane 14's, listed whole).
_INVISIBLE = frozenset(
    [
        0x034F,
        0x115F,
        0x1160,
        0x17B4,
        0x17B5,
        *range(0x180B, 0x1810),
        *range(0x2060, 0x2070),
        0x3164,
        *range(0xFE00, 0xFE10),
        0xFFA0,
        *range(0xFFF0, 0xFFF9),
        *range(0xE0000, 0xE1000),
    ]
)
_ESCAPES = _Escapes({code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F]})
_ESCAPES.update({code: f"\\u{code:04x}" for code in range(0x80, 0xA0)})  # C1, apart from raw bytes
_ESCAPES.update({ord("\\"): "\\\\", ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"})
_ESCAPES.update({0xDC00 + byte: f"\\x{byte:02x}" for byte in range(0x80, 0x100)})
_ESCAPES.update({code: f"\\u{code:04x}" for code in (0x2028, 0x2029)})


def escape(payload: bytes) -> str:
    """`payload` as one line of printable text: UTF-8 as it is, the rest escaped."""
    return payload.decode("utf-8", "surrogateescape").translate(_ESCAPES)


class OutputClosed(Exception):
    """Standard output cannot be written: checked before any message is taken."""


class Output:
    """Standard output as a bare file descriptor: a record counts as delivered once it is
    written, and, on a pipe, once the reader has read it (what sits unread in a pipe
    whose reader exits is lost with it)."""

    def __init__(self) -> None:
        stream = sys.stdout
        try:
            if stream is None:
                raise OSError(errno.EBADF, "closed")
            stream.flush()
            self.fd = stream.fileno()
            self.pipe = stat.S_ISFIFO(os.fstat(self.fd).st_mode)
        except (OSError, ValueError, AttributeError) as e:
            raise OutputClosed(f"standard output cannot be written ({e}); nothing was received") from None

    def deliver(self, record: bytes) -> bool:
        """Write `record`: True once delivered, False if the reader left without reading it.
        Raises OSError (BrokenPipeError when the reader is gone) if it cannot be written."""
        write_all(self.fd, record)
        return not self.pipe or self._read_by_reader()

    def _read_by_reader(self) -> bool:
        import fcntl
        import termios

        poller = select.poll()
        poller.register(self.fd, 0)  # POLLERR: the read end was closed
        pause = 0.00005
        unread = bytearray(4)
        while True:
            fcntl.ioctl(self.fd, termios.FIONREAD, unread)
            if not int.from_bytes(unread, sys.byteorder):
                return True
            if poller.poll(0):  # the reader left; it may have read the rest just before
                fcntl.ioctl(self.fd, termios.FIONREAD, unread)
                return not int.from_bytes(unread, sys.byteorder)
            time.sleep(pause)
            pause = min(pause * 2, 0.005)


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP call `on_stop` instead of raising in the middle of a
    message (receive closes its handle: the message in hand is delivered or put back, and
    the next receive ends the command with status 128 + the signal). A second signal
    calls `on_again` (what the first let finish is cut short) and restores the default
    dispositions, so a third one acts at once. Those the parent left blocked are unblocked
    meanwhile; one the parent set to be ignored (`nohup`) stays ignored."""

    SIGNALS = STOP_SIGNALS

    def __init__(self, on_stop: Callable[[], object], on_again: Callable[[], object] = lambda: None) -> None:
        self.on_stop = on_stop
        self.on_again = on_again
        self.signum = 0
        self.handlers: Optional[Handlers] = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum:
            if self.handlers is not None:  # None: the second came before the handlers were all set
                self.handlers.restore_handlers()
            self.on_again()
            return
        self.signum = signum
        self.on_stop()

    def __enter__(self) -> "StopSignals":
        self.handlers = Handlers(heeded(self.SIGNALS), self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self.handlers is not None
        self.handlers.restore()


def return_to_queue(mq: MessageQueue, message: Message) -> None:
    """Return a message the command took but could not deliver: at the end of the queue,
    waiting for room as long as it takes (a message is never dropped for want of it)."""
    try:
        mq.send(message.data, type=message.type)
        debug(
            "sysvmq receive: put a message of type %d (%d bytes) it could not deliver back at the end of %r",
            message.type,
            len(message.data),
            mq,
        )
    except SysVMQError as e:
        raise error_for(
            e.errno or errno.EIO,
            f"a message of type {message.type} ({len(message.data)} bytes) could not be written, nor put back",
            e.detail,
        ) from None
