"""Drive every public function with arbitrary arguments: `python _fuzz_api.py SEED EXAMPLES`.

Only documented exceptions may come out, the interpreter must not crash, and a
sentinel message survives every call that raised. Exits 0 and prints its counts.
"""

import signal
import sys

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import sysvmq
from sysvmq.queue import LONG_MAX, LONG_MIN

SENTINEL = sysvmq.Message(LONG_MAX - 1, b"sentinel \x00 must survive")
DOCUMENTED = (TypeError, ValueError, OverflowError, NotImplementedError, sysvmq.SysVMQError)

edge_ints = st.sampled_from(
    [
        0,
        1,
        -1,
        2**31 - 1,
        2**31,
        2**32 - 1,
        2**32,
        -(2**31),
        -(2**31) - 1,
        LONG_MAX,
        LONG_MAX + 1,
        LONG_MIN,
        LONG_MIN - 1,
        2**64,
        8192,
        8193,
    ]
)
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    edge_ints,
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=64),
    st.lists(st.binary(max_size=8), max_size=4),
    st.builds(bytearray, st.binary(max_size=16)),
    st.builds(memoryview, st.binary(max_size=16)),
    st.just(object()),
)


class Hang(Exception):
    pass


def on_alarm(signum, frame):
    raise Hang()


def sentinel_present(mq):
    return mq.peek(0) == SENTINEL if mq.stats().count else False


def main() -> None:
    run_seed, examples = int(sys.argv[1]), int(sys.argv[2])
    signal.signal(signal.SIGALRM, on_alarm)
    mq = sysvmq.MessageQueue(sysvmq.IPC_PRIVATE)
    before = {q.id for q in sysvmq.queues()}
    tried = {"inputs tried": 0, "documented errors": 0, "completed": 0}

    calls = {
        "send": lambda a, b, c, d: mq.send(a, b, c, block=bool(d)),
        "send kw": lambda a, b, c, d: mq.send(b"x", type=a, timeout=b),
        "receive": lambda a, b, c, d: mq.receive(a, b, timeout=c, truncate=bool(d)),
        "receive_message": lambda a, b, c, d: mq.receive_message(a, exclude=b, timeout=c),
        "receive_into": lambda a, b, c, d: mq.receive_into(a, b, timeout=c),
        "send_many": lambda a, b, c, d: mq.send_many(a, b, timeout=c),
        "receive_many": lambda a, b, c, d: mq.receive_many(a, b, timeout=c),
        "peek": lambda a, b, c, d: mq.peek(a),
        "set": lambda a, b, c, d: mq.set(mode=a if isinstance(a, int) else None, max_bytes=b),
        "open": lambda a, b, c, d: sysvmq.MessageQueue(a, b, c, mode=d),
        "from_id": lambda a, b, c, d: sysvmq.MessageQueue.from_id(a, b),
        "ftok": lambda a, b, c, d: sysvmq.ftok(a, b),
        "set_wakeup_signal": lambda a, b, c, d: sysvmq.set_wakeup_signal(a),
    }

    @seed(run_seed)
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(sorted(calls)), anything, anything, anything, anything)
    def fuzz(name, a, b, c, d):
        tried["inputs tried"] += 1
        if mq.stats().count == 0 or not sentinel_present(mq):
            mq.receive_many(10_000, block=False) if mq.stats().count else None
            mq.send(SENTINEL.data, type=SENTINEL.type)
        signal.setitimer(signal.ITIMER_REAL, 0.3)  # a valid blocking call may wait: cut it short
        try:
            result = calls[name](a, b, c, d)
            tried["completed"] += 1
            if isinstance(result, sysvmq.MessageQueue) and result.id != mq.id and result.id not in before:
                result.destroy()
        except Hang:
            pass
        except DOCUMENTED as e:
            tried["documented errors"] += 1
            if not isinstance(e, sysvmq.SysVMQError):  # a refused argument: nothing may be taken
                assert sentinel_present(mq), f"{name}{(a, b, c, d)!r} raised {e!r} and the sentinel is gone"  # noqa: PT017
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        mq.set(mode=0o600, max_bytes=sysvmq.limits().msgmnb)

    try:
        fuzz()
    finally:
        for q in sysvmq.queues():
            if q.id not in before:
                sysvmq.MessageQueue.from_id(q.id).destroy()
        mq.destroy()
    print(", ".join(f"{k} {v}" for k, v in tried.items()))


if __name__ == "__main__":
    main()
