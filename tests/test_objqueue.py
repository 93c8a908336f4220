"""sysvmq.Queue: the queue.Queue interface, compared with the stdlib's row by row, and
its serializers, types, sizes, processes and threads."""

import errno
import json
import marshal
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterator, List

import msgpack
import pytest
from conftest import ROOT, child_env, fault_under_blocked_threads, outcome, queue_ids, signals_then, wait_until

import sysvmq


@pytest.fixture
def make_q() -> Iterator[Callable[..., sysvmq.Queue]]:
    """Queues on new private kernel queues, all removed afterwards."""
    made: List[sysvmq.Queue] = []

    def factory(**kwargs: Any) -> sysvmq.Queue:
        q = sysvmq.Queue(sysvmq.IPC_PRIVATE, **kwargs)
        made.append(q)
        return q

    try:
        yield factory
    finally:
        for q in made:
            try:
                sysvmq.MessageQueue.from_id(q.message_queue.id).destroy()
            except sysvmq.QueueRemovedError:
                pass


ITEM = b"y"
# (state, call, expected outcome): the stdlib and sysvmq.Queue must agree on every row.
ROWS = [
    ("empty", lambda q: q.get_nowait(), "Empty"),
    ("empty", lambda q: q.get(False), "Empty"),
    ("empty", lambda q: q.get(block=False, timeout=-1), "Empty"),  # timeout ignored
    ("empty", lambda q: q.get(block=False, timeout=30), "Empty"),
    ("empty", lambda q: q.get(timeout=0), "Empty"),
    ("empty", lambda q: q.get(True, 0.05), "Empty"),
    ("empty", lambda q: q.get(timeout=-1), "ValueError"),
    ("empty", lambda q: q.get(timeout=-0.001), "ValueError"),
    ("empty", lambda q: q.get(timeout="1"), "TypeError"),
    ("one", lambda q: q.get_nowait(), "ok"),
    ("one", lambda q: q.get(block=False, timeout=-1), "ok"),
    ("one", lambda q: q.get(timeout=0), "ok"),
    ("one", lambda q: q.get(timeout=-1), "ValueError"),
    ("full", lambda q: q.put_nowait(ITEM), "Full"),
    ("full", lambda q: q.put(ITEM, False), "Full"),
    ("full", lambda q: q.put(ITEM, block=False, timeout=-1), "Full"),
    ("full", lambda q: q.put(ITEM, block=False, timeout=30), "Full"),
    ("full", lambda q: q.put(ITEM, timeout=0), "Full"),
    ("full", lambda q: q.put(ITEM, True, 0.05), "Full"),
    ("full", lambda q: q.put(ITEM, timeout=-1), "ValueError"),
    ("full", lambda q: q.put(ITEM, timeout="1"), "TypeError"),
    ("empty", lambda q: q.put_nowait(ITEM), "ok"),
    ("empty", lambda q: q.put(ITEM, block=False, timeout=-1), "ok"),
    ("empty", lambda q: q.put(ITEM, timeout=0), "ok"),
    ("empty", lambda q: q.put(ITEM, timeout=-1), "ValueError"),  # a bounded stdlib queue checks it
]


@pytest.mark.parametrize("state, call, expected", ROWS)
def test_raises_what_the_stdlib_raises(make_q, state, call, expected):
    stdlib: queue.Queue[bytes] = queue.Queue(maxsize=1)
    ours = make_q(serializer=None)
    ours.message_queue.set(max_bytes=1)  # room for one 1-byte item, as maxsize=1 has
    if state in ("one", "full"):
        stdlib.put(b"x")
        ours.put(b"x")
    assert outcome(lambda: call(stdlib)) == expected
    start = time.monotonic()
    assert outcome(lambda: call(ours)) == expected
    assert time.monotonic() - start < 2.0  # block=False ignored its timeout of 30 s
    assert ours.qsize() == stdlib.qsize()


@pytest.mark.parametrize("side", ["get", "put"])
def test_a_timeout_waits_then_raises_the_stdlib_exception(make_q, side):
    q = make_q(serializer=None)
    if side == "put":
        q.message_queue.set(max_bytes=1)
        q.put(b"x")
    call = {"get": lambda q: q.get(timeout=0.2), "put": lambda q: q.put(b"z", timeout=0.2)}[side]
    expected = {"get": sysvmq.QueueEmptyError, "put": sysvmq.QueueFullError}[side]
    start = time.monotonic()
    with pytest.raises(expected) as raised:
        call(q)
    elapsed = time.monotonic() - start
    assert 0.19 <= elapsed < 3.0
    assert isinstance(raised.value, queue.Empty if side == "get" else queue.Full)
    assert "timeout of 0.2 s" in str(raised.value)
    # Also what every call whose timeout expires raises: one timeout rule.
    assert isinstance(raised.value, sysvmq.QueueTimeoutError) and isinstance(raised.value, TimeoutError)
    assert raised.value.errno == errno.ETIMEDOUT
    assert type(raised.value) is {"get": sysvmq.QueueEmptyTimeoutError, "put": sysvmq.QueueFullTimeoutError}[side]


SAMPLES = [
    (pickle, {"a": (1, 2.5, None), "b": b"\x00\xff", "c": {1, 2}, "d": "é"}),
    (json, {"a": [1, 2.5, None], "b": "é\x00"}),
    (marshal, {"a": (1, 2.5, None), "b": b"\x00\xff", "c": frozenset({3})}),
    (msgpack, {"a": [1, 2.5, None], "b": b"\x00\xff", "c": "é"}),
    (None, b"\x00raw\xff"),
]


@pytest.mark.parametrize("serializer, obj", SAMPLES, ids=lambda v: getattr(v, "__name__", "raw"))
def test_each_serializer_round_trips(make_q, serializer, obj):
    q = make_q(serializer=serializer)
    assert q.serializer is serializer
    q.put(obj)
    q.put(obj)
    assert q.qsize() == 2
    assert q.get() == obj
    assert q.get(timeout=1) == obj
    assert q.empty()


def test_a_str_from_dumps_travels_as_utf8(make_q):
    class Text:
        def dumps(self, obj: Any) -> str:
            return f"<{obj}>"

        def loads(self, data: bytes) -> str:
            return data.decode("utf-8")

    q = make_q(serializer=Text(), trust_senders=True)
    q.put("é\x00")
    assert q.message_queue.peek().data == "<é\x00>".encode()
    assert q.get() == "<é\x00>"


@pytest.mark.parametrize(
    "serializer",
    [
        object(),
        type("OnlyDumps", (), {"dumps": staticmethod(pickle.dumps)})(),
        type("NotCallable", (), {"dumps": 1, "loads": 2})(),
    ],
)
def test_a_serializer_without_dumps_and_loads_is_refused_before_any_system_call(serializer):
    before = queue_ids()
    with pytest.raises(TypeError, match=r"dumps.*loads"):
        sysvmq.Queue(sysvmq.IPC_PRIVATE, serializer=serializer)
    assert queue_ids() == before


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"type": 0}, ValueError),
        ({"type": -3}, ValueError),
        ({"type": "1"}, TypeError),
        ({"type": 1.0}, TypeError),
        ({"type": 2**63}, OverflowError),
        ({"trust_senders": 1}, TypeError),
        ({"trust_senders": "no"}, TypeError),
        ({"mode": 0o1000}, ValueError),
    ],
)
def test_bad_arguments_raise_before_any_system_call(kwargs, error):
    before = queue_ids()
    with pytest.raises(error):
        sysvmq.Queue(sysvmq.IPC_PRIVATE, **kwargs)
    assert queue_ids() == before


def test_repr_names_the_queue_type_and_serializer(make_q):
    q = make_q(serializer=json, type=5)
    assert repr(q) == f"<sysvmq.Queue key=0x00000000 id={q.message_queue.id} type=5 serializer=json>"
    q.close()
    assert repr(q).endswith(" closed>")


def test_types_keep_queues_on_one_kernel_queue_apart(make_q):
    ones = make_q(serializer=json)
    twos = sysvmq.Queue.from_id(ones.message_queue.id, serializer=json, type=2)
    for i in range(3):
        ones.put(["one", i])
        twos.put(["two", i])
    assert ones.qsize() == twos.qsize() == 6  # the kernel counts every type
    assert [twos.get_nowait() for _ in range(3)] == [["two", 0], ["two", 1], ["two", 2]]
    with pytest.raises(queue.Empty, match=r"get from queue .* type=2: nothing waiting"):
        twos.get_nowait()
    assert [ones.get_nowait() for _ in range(3)] == [["one", 0], ["one", 1], ["one", 2]]
    assert twos.type == 2


def test_full_means_no_room_for_any_message(make_q):
    q = make_q(serializer=None)
    q.message_queue.set(max_bytes=10)
    q.put(b"123456789")
    assert not q.full()
    q.put(b"0")
    assert q.full() and q.qsize() == 2
    with pytest.raises(queue.Full, match=r"put to queue .* type=1: no room now"):
        q.put_nowait(b"z")
    q.get()
    assert not q.full()


def test_full_counts_messages_too_as_linux_does(make_q):
    q = make_q(serializer=None)
    q.message_queue.set(max_bytes=3)
    for _ in range(3):
        q.put(b"")
    assert q.message_queue.stats().bytes == 0
    assert q.full()
    with pytest.raises(queue.Full):
        q.put_nowait(b"")


@pytest.mark.parametrize("serializer", [pickle, None])
@pytest.mark.parametrize("call", ["put", "put_nowait", "put_timeout"])
def test_too_large_for_the_kernel_names_msgmax(make_q, limits, serializer, call):
    q = make_q(serializer=serializer)
    big = b"x" * (limits.msgmax + 1)
    put = {"put": q.put, "put_nowait": q.put_nowait, "put_timeout": lambda o: q.put(o, timeout=5)}[call]
    with pytest.raises(sysvmq.MessageTooLargeError, match=r"kernel\.msgmax") as raised:
        put(big)
    assert not isinstance(raised.value, queue.Full)
    assert q.qsize() == 0


@pytest.mark.parametrize("call", ["put", "put_nowait", "put_timeout"])
def test_too_large_for_the_queue_names_its_capacity_and_never_waits(make_q, call):
    q = make_q()
    q.message_queue.set(max_bytes=100)
    put = {"put": q.put, "put_nowait": q.put_nowait, "put_timeout": lambda o: q.put(o, timeout=30)}[call]
    start = time.monotonic()
    with pytest.raises(sysvmq.MessageTooLargeError, match="max_bytes") as raised:
        put("x" * 200)
    assert time.monotonic() - start < 2.0
    assert "as pickle serializes it" in str(raised.value)
    assert not isinstance(raised.value, queue.Full)
    assert q.qsize() == 0


def test_close_wakes_blocked_getters_and_putters(make_q):
    q = make_q(serializer=None)
    q.message_queue.set(max_bytes=1)
    q.put(b"x")
    other = sysvmq.Queue.from_id(q.message_queue.id, serializer=None, type=2)
    calls = [(other.get, (), {}), (other.get, (), {"timeout": 60}), (other.put, (b"y",), {})]
    outcomes, took = fault_under_blocked_threads(calls, other.close)
    assert len(outcomes) == 3 and took < 5
    assert all(isinstance(e, sysvmq.QueueClosedError) for e in outcomes), outcomes
    assert other.closed and not q.closed
    with pytest.raises(sysvmq.QueueClosedError):
        other.put(b"z")
    assert q.get_nowait() == b"x"  # another handle on the same queue is untouched
    q.close()
    assert q.closed


def test_a_queue_removed_under_blocked_getters(make_q):
    q = make_q()
    calls = [(q.get, (), {}), (q.get, (), {"timeout": 60}), (q.get, (True, 60), {})]
    outcomes, took = fault_under_blocked_threads(calls, q.message_queue.destroy)
    assert took < 5 and len(outcomes) == 3
    assert all(type(e) is sysvmq.QueueRemovedError for e in outcomes), outcomes


def test_the_context_manager_closes_and_keeps_the_body_error(make_q):
    q = make_q()
    with pytest.raises(KeyError), q as same:
        assert same is q
        raise KeyError("body")
    assert q.closed
    assert sysvmq.MessageQueue.from_id(q.message_queue.id).stats().id == q.message_queue.id  # not destroyed


def test_a_signal_handler_runs_during_a_blocked_get(make_q):
    import signal

    q = make_q()
    feeder = sysvmq.Queue.from_id(q.message_queue.id)
    with signals_then(signal.SIGUSR1, 3, lambda: feeder.put({"after": "signals"})) as calls:
        assert q.get(timeout=30) == {"after": "signals"}
    assert len(calls) == 3


def test_a_thread_that_blocks_every_signal_still_times_out_and_wakes(make_q):
    import signal

    q = make_q()
    results: List[str] = []

    def worker() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals))
        results.append(outcome(lambda: q.get(timeout=0.2)))
        results.append(q.get(timeout=30))

    t = threading.Thread(target=worker)
    t.start()
    wait_until(lambda: results, "the first get never timed out")
    q.put("late")
    t.join(30)
    assert results == ["Empty", "late"]


def test_threads_lose_and_double_nothing(make_q):
    q = make_q(serializer=marshal)
    producers, consumers, each = 4, 4, 500
    got: List[int] = []
    lock = threading.Lock()

    def produce(base: int) -> None:
        for i in range(each):
            q.put(base * each + i)

    def consume() -> None:
        for item in iter(lambda: q.get(timeout=30), None):  # until a None
            with lock:
                got.append(item)

    threads = [threading.Thread(target=consume) for _ in range(consumers)]
    threads += [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for t in threads:
        t.start()
    for t in threads[consumers:]:
        t.join(60)
    for _ in range(consumers):
        q.put(None)
    for t in threads[:consumers]:
        t.join(60)
    assert sorted(got) == list(range(producers * each))


def test_a_forked_child_puts_what_the_parent_gets(make_q):
    q = make_q()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            for i in range(100):
                q.put({"n": i})
        finally:
            os._exit(0)
    assert [q.get(timeout=30)["n"] for _ in range(100)] == list(range(100))
    assert os.waitpid(pid, 0)[1] == 0
    assert q.empty()


CHILD = """
import sysvmq, {serializer}
requests = sysvmq.Queue({key}, serializer={serializer})
replies = sysvmq.Queue({key}, serializer={serializer}, type=2)
while True:
    item = requests.get(timeout=30)
    if item is None:
        break
    replies.put({{"echo": item}})
"""


@pytest.mark.parametrize("serializer", ["pickle", "json"])
def test_an_unrelated_process_shares_the_queue_by_key(free_key, serializer):
    module = {"pickle": pickle, "json": json}[serializer]
    requests = sysvmq.Queue(free_key, create=True, serializer=module)
    replies = sysvmq.Queue(free_key, serializer=module, type=2)
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD.format(key=free_key, serializer=serializer)], env=child_env()
        )
        items = [1, "two", [3, 4], {"five": 5}]
        for item in items:
            requests.put(item)
        assert [replies.get(timeout=30) for _ in items] == [{"echo": item} for item in items]
        requests.put(None)
        assert child.wait(30) == 0
        assert requests.empty()
    finally:
        requests.message_queue.destroy()


def test_a_pickled_queue_works_in_another_process(make_q):
    q = make_q(serializer=json, type=7)
    code = "import pickle, sys; q = pickle.load(sys.stdin.buffer); q.put({'from': 'child', 'type': q.type})"
    subprocess.run(
        [sys.executable, "-c", code],
        input=pickle.dumps(q),
        env=child_env(),
        check=True,
        timeout=30,
        cwd=ROOT + "/tests",
    )
    assert q.get(timeout=30) == {"from": "child", "type": 7}
