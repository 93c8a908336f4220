"""One timeout rule for every call: any real number of seconds, as queue.Queue takes it.

Every kind of timeout meets every entry point (sync, async, iteration, sysvmq.Queue), in a
queue that is ready (a message waiting, or room) and one that is not; the sysvmq.Queue rows
are compared with a bounded queue.Queue in the same state.
"""

import asyncio
import decimal
import fractions
import itertools
import math
import numbers
import queue
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import pytest
from conftest import outcome

import sysvmq

try:
    import numpy
except ImportError:  # PyPy: the rows that need it skip; FloatOnly stands in for its scalars
    numpy = None


class FloatOnly:
    """A real number that offers nothing but __float__, as a foreign scalar type may
    (numpy's are registered as numbers.Real the same way): no arithmetic, no comparison."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __float__(self) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"FloatOnly({self.value})"


numbers.Real.register(FloatOnly)


def kind(name: str, make: Callable[[], Any], needs_numpy: bool = False) -> Any:
    """A timeout value for parametrize, made when the test runs (numpy may be absent)."""
    # The test extra installs numpy on CPython; PyPy has no wheel (FloatOnly stands in there).
    absent = numpy is None and sys.implementation.name != "cpython"
    marks = [pytest.mark.skipif(absent, reason="numpy has no PyPy wheel")] if needs_numpy else []
    return pytest.param(make, id=name, marks=marks)


# Values that mean "try once" or a short wait: each expires in a queue that is not ready.
SHORT = [
    kind("int 0", lambda: 0),
    kind("float", lambda: 0.05),
    kind("False", lambda: False),
    kind("Fraction", lambda: fractions.Fraction(1, 20)),
    kind("FloatOnly", lambda: FloatOnly(0.05)),
    kind("numpy.int64", lambda: numpy.int64(0), needs_numpy=True),
    kind("numpy.float16", lambda: numpy.float16(0.05), needs_numpy=True),
    kind("numpy.float64", lambda: numpy.float64(0.05), needs_numpy=True),
]
# Values that wait long or forever: taken by a queue that is ready.
LONG = [
    kind("True", lambda: True),  # one second, as bool is an int everywhere else too
    kind("int", lambda: 30),
    kind("inf", lambda: math.inf),
    kind("huge int", lambda: 10**400),
    kind("huge Fraction", lambda: fractions.Fraction(10**400, 3)),
    kind("FloatOnly inf", lambda: FloatOnly(math.inf)),
]
NEGATIVE = [
    kind("-1", lambda: -1),
    kind("-0.001", lambda: -0.001),
    kind("-inf", lambda: -math.inf),
    kind("huge negative int", lambda: -(10**400)),
    kind("negative Fraction", lambda: fractions.Fraction(-1, 10)),
    kind("negative FloatOnly", lambda: FloatOnly(-0.1)),
    kind("negative numpy.float16", lambda: numpy.float16(-0.1), needs_numpy=True),
]
NAN = [
    kind("nan", lambda: math.nan),
    kind("FloatOnly nan", lambda: FloatOnly(math.nan)),
    kind("numpy nan", lambda: numpy.float64("nan"), needs_numpy=True),
]
NOT_REAL = [
    kind("Decimal", lambda: decimal.Decimal("0.05")),  # not a numbers.Real; queue.Queue fails on it too
    kind("str", lambda: "1"),
    kind("complex", lambda: 1j),
    kind("list", lambda: [1]),
]


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def first_message(mq: sysvmq.MessageQueue, timeout: Any) -> Optional[sysvmq.Message]:
    """One step of messages(timeout=...): None when the loop ended (timed out)."""
    return next(itertools.islice(mq.messages(timeout=timeout), 1), None)


# entry point: (does it send?, call(mq, timeout)); a receive returns what it took.
ENTRY_POINTS: Dict[str, Any] = {
    "send": (True, lambda mq, t: mq.send(b"y", timeout=t)),
    "send_many": (True, lambda mq, t: mq.send_many([b"y"], timeout=t)),
    "send_async": (True, lambda mq, t: run(mq.send_async(b"y", timeout=t))),
    "Queue.put": (True, lambda mq, t: sysvmq.Queue.from_id(mq.id, serializer=None).put(b"y", timeout=t)),
    "receive": (False, lambda mq, t: mq.receive(timeout=t)),
    "receive_message": (False, lambda mq, t: mq.receive_message(timeout=t)),
    "receive_into": (False, lambda mq, t: mq.receive_into(bytearray(8), timeout=t)),
    "receive_many": (False, lambda mq, t: mq.receive_many(5, timeout=t)),
    "messages": (False, first_message),
    "receive_async": (False, lambda mq, t: run(mq.receive_async(timeout=t))),
    "receive_message_async": (False, lambda mq, t: run(mq.receive_message_async(timeout=t))),
    "Queue.get": (False, lambda mq, t: sysvmq.Queue.from_id(mq.id, serializer=None).get(timeout=t)),
}
ENTRIES = pytest.mark.parametrize("entry", ENTRY_POINTS)


def prepare(mq: sysvmq.MessageQueue, sends: bool, ready: bool) -> None:
    """A queue with room for one 1-byte message; a receive finds one waiting if `ready`,
    a send finds the room taken unless `ready`."""
    mq.set(max_bytes=1)
    if ready != sends:
        mq.send(b"x")


@ENTRIES
@pytest.mark.parametrize("make", SHORT + LONG)
def test_every_real_timeout_is_taken_by_every_call(mq, entry, make):
    sends, call = ENTRY_POINTS[entry]
    prepare(mq, sends, ready=True)
    call(mq, make())
    assert mq.stats().count == (1 if sends else 0)


@ENTRIES
@pytest.mark.parametrize("make", SHORT)
def test_every_short_timeout_expires_on_every_call(mq, entry, make):
    sends, call = ENTRY_POINTS[entry]
    prepare(mq, sends, ready=False)
    start = time.monotonic()
    if entry == "messages":
        assert first_message(mq, make()) is None  # the loop ends quietly
    else:
        with pytest.raises((sysvmq.QueueTimeoutError, queue.Empty, queue.Full)):
            call(mq, make())
    assert time.monotonic() - start < 2.0
    assert mq.stats().count == (1 if sends else 0)


@ENTRIES
@pytest.mark.parametrize(
    "make, error",
    [pytest.param(p.values[0], ValueError, id=p.id, marks=p.marks) for p in NEGATIVE + NAN]
    + [pytest.param(p.values[0], TypeError, id=p.id, marks=p.marks) for p in NOT_REAL],
)
def test_a_bad_timeout_is_refused_by_every_call_before_any_system_call(mq, entry, make, error):
    sends, call = ENTRY_POINTS[entry]
    prepare(mq, sends, ready=True)
    with pytest.raises(error, match="timeout"):
        call(mq, make())
    assert mq.stats().count == (0 if sends else 1)  # nothing sent, nothing taken


STDLIB_CALLS = {
    "get": lambda q, t: q.get(timeout=t),
    "put": lambda q, t: q.put(b"y", timeout=t),
}


def stdlib_kinds(kinds: List[Any]) -> List[Any]:
    """The kinds queue.Queue can take at all: it compares and adds the timeout, which
    FloatOnly does not offer, and adds it to a float, which a huge number overflows."""
    return [p for p in kinds if "FloatOnly" not in p.id and "huge" not in p.id]


# (kind, state): a long timeout only where the call need not wait.
PARITY = [
    *((p, ready) for p in stdlib_kinds(SHORT + NEGATIVE + NOT_REAL) for ready in (True, False)),
    *((p, True) for p in stdlib_kinds(LONG)),
]


@pytest.mark.parametrize("side", STDLIB_CALLS)
@pytest.mark.parametrize(
    "make, ready",
    [pytest.param(p.values[0], r, id=f"{p.id}-{'ready' if r else 'not ready'}", marks=p.marks) for p, r in PARITY],
)
def test_queue_takes_and_refuses_the_timeouts_the_stdlib_does(mq, side, make, ready):
    stdlib: queue.Queue[bytes] = queue.Queue(maxsize=1)
    ours = sysvmq.Queue.from_id(mq.id, serializer=None)
    prepare(mq, side == "put", ready)
    if ready != (side == "put"):
        stdlib.put(b"x")
    call = STDLIB_CALLS[side]
    expected = outcome(lambda: call(stdlib, make()))
    assert outcome(lambda: call(ours, make())) == expected
    assert ours.qsize() == stdlib.qsize()


@pytest.mark.parametrize("side", STDLIB_CALLS)
@pytest.mark.parametrize("make", [p for p in LONG if "huge" in p.id])
def test_queue_waits_forever_where_the_stdlib_overflows(mq, side, make):
    """queue.Queue adds the timeout to time.time(): beyond a float, OverflowError even when
    it need not wait. sysvmq takes it as math.inf, as every call does (None's meaning)."""
    stdlib: queue.Queue[bytes] = queue.Queue(maxsize=1)
    with pytest.raises(OverflowError):
        STDLIB_CALLS[side](stdlib, make())
    ours = sysvmq.Queue.from_id(mq.id, serializer=None)
    prepare(mq, side == "put", ready=True)
    STDLIB_CALLS[side](ours, make())
    assert ours.qsize() == (1 if side == "put" else 0)


@pytest.mark.parametrize("side", STDLIB_CALLS)
@pytest.mark.parametrize("make", NAN)
def test_queue_refuses_nan_where_the_stdlib_would_spin_forever(mq, side, make):
    """queue.Queue takes a NaN timeout while it need not wait and then busy-loops for ever
    (Condition.wait(nan) returns at once); sysvmq refuses it up front, as every call does."""
    ours = sysvmq.Queue.from_id(mq.id, serializer=None)
    prepare(mq, side == "put", ready=True)
    with pytest.raises(ValueError, match="NaN"):
        STDLIB_CALLS[side](ours, make())


def test_the_error_message_says_the_timeout_in_seconds(mq):
    with pytest.raises(sysvmq.QueueTimeoutError, match=r"within the timeout of 0\.05 s"):
        mq.receive(timeout=fractions.Fraction(1, 20))
    with pytest.raises(queue.Empty, match=r"within the timeout of 0\.0 s"):
        sysvmq.Queue.from_id(mq.id, serializer=None).get(timeout=False)
