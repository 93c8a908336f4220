"""Argument checking and option folding, one rule for every entry point.

Every public call checks its arguments here before any system call: wrong types
are a TypeError, values its C type cannot hold an OverflowError, values out of
their meaningful range a ValueError. Keyword options (`block`, `timeout`,
`truncate`, `exclude`) fold into raw flags and one absolute deadline.
"""

import builtins
import math
import numbers
from typing import Any, Callable, NamedTuple, Optional, Tuple

from sysvmq._binding.c import (
    IPC_CREAT,
    IPC_EXCL,
    IPC_NOWAIT,
    IPC_PRIVATE,
    KEY_BITS,
    LONG_MAX,
    LONG_MIN,
    MSG_EXCEPT,
    MSG_NOERROR,
    SIZE_T_BITS,
)
from sysvmq._binding.system import kernel_msgmax, monotonic_ns, signed_key
from sysvmq._integers import INT_MAX, check_int, type_name

KEY_MIN = -(1 << (KEY_BITS - 1))
KEY_MAX = (1 << KEY_BITS) - 1
UINT32_MAX = (1 << 32) - 1
SSIZE_LIMIT = 1 << (SIZE_T_BITS - 1)  # ssize_t: -SSIZE_LIMIT .. SSIZE_LIMIT - 1
OPEN_FLAG_BITS = IPC_CREAT | IPC_EXCL | 0o777
SEND_FLAG_BITS = IPC_NOWAIT
RECEIVE_FLAG_BITS = IPC_NOWAIT | MSG_NOERROR | MSG_EXCEPT


class Options(NamedTuple):
    """The checked options of one call."""

    flags: int  # raw msgsnd / msgrcv flags
    deadline: int  # CLOCK_MONOTONIC ns; -1: none
    timeout: Optional[float]  # what the deadline came from, for the error message


#: A call that blocks until it is done: no flags, no deadline.
WAIT_FOREVER = Options(0, -1, None)
FOREVER_NS = 1 << 62  # deadlines further out than ~146 years mean "no deadline"
FOREVER_S = FOREVER_NS // 10**9

exact_type = builtins.type  # for modules whose methods take a parameter named `type`


def check_key(key: Any) -> int:
    """The signed key_t for `key`, which may be given as 0..2**32-1 or signed."""
    return signed_key(check_int("key", key, KEY_MIN, KEY_MAX, KEY_MIN, KEY_MAX))


def check_max_size(max_size: Optional[int]) -> int:
    if max_size is None:
        return kernel_msgmax()
    return check_int("max_size", max_size, 0, INT_MAX, -SSIZE_LIMIT, SSIZE_LIMIT - 1)


def check_send_type(mtype: Any) -> int:
    try:
        return check_int("message type", mtype, 1, LONG_MAX, LONG_MIN, LONG_MAX)
    except ValueError:
        raise ValueError(
            f"message type must be >= 1 to send (0 and negatives only select on receive), not {mtype}"
        ) from None


def check_receive_type(mtype: Any) -> int:
    return check_int("message type", mtype, LONG_MIN, LONG_MAX, LONG_MIN, LONG_MAX)


def check_flags(flags: Any, allowed: int, call: str) -> int:
    value = check_int("flags", flags, 0, INT_MAX)
    unknown = value & ~allowed
    if unknown:
        raise ValueError(f"flags {unknown:#o} are not {call} flags")
    return value


def open_flags(
    signed_key: int, flags: int, create: bool, exclusive: bool, mode: Optional[int]
) -> Tuple[int, Optional[int]]:
    """The msgget flags for MessageQueue's arguments, and the checked `mode`."""
    flags = check_flags(flags, OPEN_FLAG_BITS, "msgget")
    if mode is not None:
        mode = check_int("mode", mode, 0, 0o777)
        if flags & 0o777 and flags & 0o777 != mode:
            raise ValueError(f"mode {mode:#o} contradicts the permission bits {flags & 0o777:#o} in flags")
        flags |= mode
    if create:
        flags |= IPC_CREAT
    if exclusive:
        if not flags & IPC_CREAT:
            raise ValueError("exclusive=True needs create=True (or IPC_CREAT in flags)")
        flags |= IPC_EXCL
    if (flags & IPC_CREAT or signed_key == IPC_PRIVATE) and mode is None and not flags & 0o777:
        flags |= 0o600
    return flags, mode


def timeout_seconds(timeout: Any) -> float:
    """`timeout` (not None) as seconds, by the rule ``queue.Queue`` follows: any real number.

    ``numbers.Real`` is what ``queue.Queue`` computes deadlines with: int (bool too, as
    for every integer argument), float, Fraction, numpy scalars. A Decimal is no Real
    (``queue.Queue`` fails on it too). Only ``float()`` is asked of the value, as
    ``time.sleep()`` does; one too large for a float waits forever, like ``math.inf``.
    """
    if exact_type(timeout) is float or exact_type(timeout) is int:
        seconds = timeout
    elif isinstance(timeout, numbers.Real):
        try:
            seconds = float(timeout)
        except OverflowError:  # an int or Fraction beyond a float: only its sign matters
            seconds = -math.inf if timeout < 0 else math.inf
    else:
        raise TypeError(
            f"timeout must be a real number of seconds (int, float, Fraction, numpy scalar) or None, "
            f"not {type_name(timeout)}"
        )
    if seconds != seconds:  # NaN; math.isnan() would overflow on a huge int
        raise ValueError("timeout must not be NaN")
    if seconds < 0:
        raise ValueError(f"timeout must be >= 0 seconds, not {timeout}")
    return seconds


def seconds_text(timeout: Any) -> str:
    """A checked `timeout` as error messages print it: seconds, whatever its type (not True or 1/10)."""
    return str(timeout if exact_type(timeout) is float or exact_type(timeout) is int else timeout_seconds(timeout))


def wait_seconds(timeout: Any) -> Optional[float]:
    """A checked `timeout` as a float of seconds; None for None, inf or too far out (forever)."""
    if timeout is None:
        return None
    seconds = timeout_seconds(timeout)
    return None if seconds >= FOREVER_S else seconds


def deadline_ns(timeout: Any) -> int:
    """The CLOCK_MONOTONIC deadline for `timeout` seconds; -1 for None, inf or too far out (forever)."""
    if timeout is None:
        return -1
    seconds = timeout_seconds(timeout)
    if seconds >= FOREVER_S:
        return -1
    return int(monotonic_ns() + seconds * 1e9)


def _blocking(flags: int, block: bool, timeout: Any) -> Tuple[int, int]:
    """Fold `block` into `flags` and turn `timeout` into a deadline."""
    if not block:
        flags |= IPC_NOWAIT
    if timeout is not None and flags & IPC_NOWAIT:
        raise ValueError("timeout applies to blocking calls: drop block=False / IPC_NOWAIT, or the timeout")
    return flags, deadline_ns(timeout)


def send_options(flags: Any, block: bool, timeout: Any) -> Tuple[int, int]:
    """(msgsnd flags, deadline) for a send call's arguments."""
    return _blocking(check_flags(flags, SEND_FLAG_BITS, "msgsnd"), block, timeout)


def receive_options(
    mtype: int, flags: Any, block: bool, timeout: Any, truncate: bool, exclude: bool
) -> Tuple[int, int]:
    """(msgrcv flags, deadline) for a receive call's arguments; `mtype` already checked."""
    flags = check_flags(flags, RECEIVE_FLAG_BITS, "msgrcv")
    if truncate:
        flags |= MSG_NOERROR
    if exclude:
        if not MSG_EXCEPT:
            raise NotImplementedError("exclude=True needs MSG_EXCEPT, which only Linux has")
        flags |= MSG_EXCEPT
    if flags & MSG_EXCEPT and mtype <= 0:
        raise ValueError(f"exclude / MSG_EXCEPT needs a message type > 0 to exclude, not {mtype}")
    return _blocking(flags, block, timeout)


def bad_type(mtype: Any, check: Callable[[Any], int]) -> Exception:
    """The error for a message type that C refused: `check` explains it."""
    try:
        check(mtype)
    except (TypeError, ValueError, OverflowError) as e:
        return e
    return TypeError(f"message type must be an int, not {type_name(mtype)}")


def as_bytes(message: Any) -> bytes:
    """`message` as exact bytes, copied from its buffer (never trusting its len())."""
    if issubclass(exact_type(message), str):  # isinstance() would believe a lying __class__
        return str.encode(message, "utf-8")
    try:
        return memoryview(message).tobytes()
    except TypeError:
        raise TypeError(f"message must be bytes-like or str, not {type_name(message)}") from None
