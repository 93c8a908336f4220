"""Strict parsing of the command line's numbers, and the exit statuses it documents."""

import argparse
import math
import re

from sysvmq._binding.c import LONG_MAX, LONG_MIN
from sysvmq.errors import SysVMQError
from sysvmq.queue import MessageQueue

__all__ = [
    "OK",
    "FAILED",
    "USAGE",
    "NOTHING",
    "EXIT_STATUSES",
    "UsageError",
    "PRIVATE_KEY",
    "parse_key",
    "parse_id",
    "parse_type",
    "parse_send_type",
    "parse_timeout",
    "parse_count",
    "parse_mode",
    "parse_seconds",
    "open_queue",
]

OK = 0
FAILED = 1
USAGE = 2
NOTHING = 3
"""Nothing to receive, no room to send: the queue stayed empty (or full) until --timeout
expired, or was so at once with --nowait. Not an error: the command did all it could."""

EXIT_STATUSES = f"""exit status:
  {OK}    success
  {FAILED}    an error (one line on stderr)
  {USAGE}    a usage error
  {NOTHING}    nothing to receive or no room to send: --nowait found the queue empty (full),
       or --timeout expired (what was received before that was written out)
  128+N ended by signal N (130: Ctrl-C)"""


class UsageError(Exception):
    """Arguments that parse but do not go together: exit status 2."""


PRIVATE_KEY = "key 0 is IPC_PRIVATE, shared by every private queue: name those by --id ID"


_DECIMAL = re.compile(r"-?[0-9]+\Z")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+\Z")
_OCTAL = re.compile(r"(0[oO])?[0-7]+\Z")
_SECONDS = re.compile(r"([0-9]+(\.[0-9]*)?|\.[0-9]+)\Z")


def _number(text: str, what: str, negative: bool = False) -> int:
    """Decimal or 0x-hex, ASCII digits only: no spaces, no underscores, no sign unless `negative`."""
    if _HEX.match(text):
        return int(text, 16)
    if _DECIMAL.match(text) and (negative or not text.startswith("-")):
        return int(text, 10)
    raise argparse.ArgumentTypeError(f"not {what}: {text!r} (use decimal or 0x-hex digits)")


def parse_key(text: str) -> int:
    """A key as decimal or 0x-hex, 0..0xffffffff."""
    key = _number(text, "a key")
    if key > 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"a key is at most 0xffffffff, not {text}")
    return key


def parse_id(text: str) -> int:
    """A msqid as decimal or 0x-hex, 0..2**31-1."""
    msqid = _number(text, "a queue id")
    if msqid > 0x7FFFFFFF:
        raise argparse.ArgumentTypeError(f"a queue id is at most {0x7FFFFFFF}, not {text}")
    return msqid


def parse_type(text: str) -> int:
    """A message type for receive: decimal or 0x-hex, negative allowed (it selects by it),
    within a C long."""
    mtype = _number(text, "a message type", negative=True)
    if not LONG_MIN <= mtype <= LONG_MAX:
        raise argparse.ArgumentTypeError(f"a message type is a C long, {LONG_MIN}..{LONG_MAX}, not {text}")
    return mtype


def parse_send_type(text: str) -> int:
    """A message type for send: 1 up to the largest C long."""
    mtype = _number(text, "a message type", negative=True)
    if not 1 <= mtype <= LONG_MAX:
        raise argparse.ArgumentTypeError(f"a message type to send is 1..{LONG_MAX}, not {text}")
    return mtype


def parse_count(text: str) -> int:
    """A count of at least 1."""
    count = _number(text, "a count")
    if count < 1:
        raise argparse.ArgumentTypeError(f"the count must be at least 1, not {count}")
    return count


def parse_mode(text: str) -> int:
    """Permission bits in octal (0640, 0o640, 640)."""
    if not _OCTAL.match(text):
        raise argparse.ArgumentTypeError(f"not an octal mode: {text!r}")
    return int(text[2:] if text[1:2] in "oO" and len(text) > 1 else text, 8)


def parse_seconds(text: str) -> float:
    """A positive, finite number of seconds in plain decimal (0.5, 2, .25): no sign,
    exponent, nan or inf."""
    if not _SECONDS.match(text):
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r} (use decimal digits, e.g. 0.5)")
    seconds = float(text)
    if not 0 < seconds < 86400 or not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f"the interval must be more than 0 and less than a day, not {text}")
    return seconds


def parse_timeout(text: str) -> float:
    """Seconds to wait, 0 or more, in plain decimal (0, 0.5, 2): no sign, exponent, nan or inf."""
    if not _SECONDS.match(text):
        raise argparse.ArgumentTypeError(
            f"not a number of seconds: {text!r} (use decimal digits, e.g. 0.5; leave out --timeout to wait for good)"
        )
    seconds = float(text)
    if math.isinf(seconds):  # digits past a double's range
        raise argparse.ArgumentTypeError(f"too many seconds: {text[:20]}... (leave out --timeout to wait for good)")
    return seconds


def open_queue(args: argparse.Namespace, create: bool = False, exclusive: bool = False) -> MessageQueue:
    """The queue that KEY or --id names, with the checks of --create, --exclusive and --mode."""
    mode = getattr(args, "mode", None)
    if mode is not None and not create:
        raise UsageError("--mode sets the permissions of a queue --create makes: add --create")
    if exclusive and not create:
        raise UsageError("--exclusive needs --create")
    if args.id is not None:
        if args.key is not None:
            raise UsageError("name the queue by KEY or by --id ID, not both")
        if create:
            raise UsageError("--create makes a queue by KEY; an --id names one that exists")
        return MessageQueue.from_id(args.id)
    if args.key is None:
        raise UsageError("name the queue by KEY or --id ID")
    key = parse_key(args.key)
    if key == 0 and not create:  # msgget would make a new queue, never find one
        raise UsageError(PRIVATE_KEY)
    return MessageQueue(key, create=create, exclusive=exclusive, mode=mode)  # errors worded by cli.run()


#: The library's advice, in the command line's terms.
_CLI_TERMS = (
    ("drop exclusive=True", "drop --exclusive"),
    ("pass exclusive=True", "pass --exclusive"),
    ("what mode=", "what --mode "),
    ("leave out mode", "leave out --mode"),
    ("see stats().mode", "see the mode sysvmq stat shows"),
    ("(block=False)", "(--nowait)"),
    ("truncate=True", "--truncate"),
)


def in_cli_terms(error: SysVMQError, can_create: bool) -> SysVMQError:
    """`error`, its advice in the options of the command (which has --create if
    `can_create`) rather than the arguments of MessageQueue() and its methods."""
    text = error.detail
    missing = "no queue has this key (sysvmq ls lists the queues)"
    terms = (*_CLI_TERMS, ("pass create=True to make it", "pass --create to make it" if can_create else missing))
    for library, command_line in terms:
        text = text.replace(library, command_line)
    return type(error)(error.errno, text)
