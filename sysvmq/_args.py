"""Argument checking and option folding, one rule for every entry point.

Every public call checks its arguments here before any system call: wrong types
are a TypeError, values its C type cannot hold an OverflowError, values out of
their meaningful range a ValueError. Keyword options (`block`, `timeout`,
`truncate`, `exclude`) fold into raw flags and one absolute deadline.
"""

import builtins
import math
import numbers
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Tuple

from sysvmq._integers import INT_MAX, check_int, type_name
from sysvmq._sysvmq_cffi import ffi, lib
from sysvmq.stats import msgmax

LONG_MAX: int = lib.SYSVMQ_LONG_MAX
LONG_MIN: int = lib.SYSVMQ_LONG_MIN
KEY_BITS = ffi.sizeof("key_t") * 8
KEY_MIN = -(1 << (KEY_BITS - 1))
KEY_MAX = (1 << KEY_BITS) - 1
UINT32_MAX = (1 << 32) - 1
SSIZE_LIMIT = 1 << (ffi.sizeof("size_t") * 8 - 1)  # ssize_t: -SSIZE_LIMIT .. SSIZE_LIMIT - 1
OPEN_FLAG_BITS = lib.IPC_CREAT | lib.IPC_EXCL | 0o777
MSG_EXCEPT = lib.SYSVMQ_MSG_EXCEPT if lib.SYSVMQ_HAS_MSG_EXCEPT else 0
MSG_COPY = lib.SYSVMQ_MSG_COPY if lib.SYSVMQ_HAS_MSG_COPY else 0
SEND_FLAG_BITS = lib.IPC_NOWAIT
RECEIVE_FLAG_BITS = lib.IPC_NOWAIT | lib.MSG_NOERROR | MSG_EXCEPT
FOREVER_NS = 1 << 62  # deadlines further out than ~146 years mean "no deadline"
FOREVER_S = FOREVER_NS // 10**9

exact_type = builtins.type  # for modules whose methods take a parameter named `type`


def check_key(key: Any) -> int:
    """The signed key_t for `key`, which may be given as 0..2**32-1 or signed."""
    value = check_int("key", key, KEY_MIN, KEY_MAX, KEY_MIN, KEY_MAX)
    return value - (1 << KEY_BITS) if value > KEY_MAX >> 1 else value


def check_max_size(max_size: Optional[int]) -> int:
    if max_size is None:
        return msgmax()
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
    return int(lib.sysvmq_monotonic_ns() + seconds * 1e9)


def _blocking(flags: int, block: bool, timeout: Any) -> Tuple[int, int]:
    """Fold `block` into `flags` and turn `timeout` into a deadline."""
    if not block:
        flags |= lib.IPC_NOWAIT
    if timeout is not None and flags & lib.IPC_NOWAIT:
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
        flags |= lib.MSG_NOERROR
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


def payload(message: Any) -> Any:
    """`message` as something a `const char *` parameter takes, whose len() is the length
    of the memory C reads: exact bytes, or a cdata view of the object's buffer (a
    subclass of bytes or str may lie in its __len__, __class__ or encode())."""
    if issubclass(exact_type(message), str):  # isinstance() would believe a lying __class__
        return str.encode(message, "utf-8")
    if exact_type(message) is bytes:
        return message
    try:
        return ffi.from_buffer(message)
    except TypeError:
        raise TypeError(f"message must be bytes-like or str, not {type(message).__name__}") from None
    except (BufferError, ValueError):  # a non-contiguous buffer: one copy in C order
        return memoryview(message).tobytes()


# A cdata view of a caller's buffer holds an export of it until released. A call that
# fails leaves its frame in the exception's traceback, often in a reference cycle; if the
# view were still alive there, CPython's collector would meet a memoryview it cannot clear
# ("memoryview has 1 exported buffer") and crash. So every view lives in a with-block.


@contextmanager
def exported(message: Any) -> Iterator[Any]:
    """payload(message) for the length of a with-block, released at its end."""
    data = payload(message)
    try:
        yield data
    finally:
        if exact_type(data) is not bytes:
            ffi.release(data)


@contextmanager
def writable(buffer: Any) -> Iterator[Any]:
    """A cdata view of the writable, contiguous `buffer` for the length of a with-block."""
    try:
        dest = ffi.from_buffer(buffer, require_writable=True)
    except (TypeError, BufferError, ValueError):
        # Checked before the call: the kernel would drop a message it cannot write (EFAULT).
        raise TypeError(f"buffer must be a writable, contiguous buffer, not {type_name(buffer)}") from None
    try:
        yield dest
    finally:
        ffi.release(dest)
