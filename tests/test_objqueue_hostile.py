"""sysvmq.Queue in a hostile world: senders that are not you, messages that do not
decode, objects and serializers that lie."""

import json
import marshal
import os
import pickle
import threading
from typing import Any, Callable, Iterator, List

import msgpack
import pytest
from conftest import queue_ids
from test_permissions import NOBODY, as_nobody

import sysvmq

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="another uid needs root")


@pytest.fixture
def make_q() -> Iterator[Callable[..., sysvmq.Queue]]:
    made: List[int] = []

    def factory(**kwargs: Any) -> sysvmq.Queue:
        q = sysvmq.Queue(sysvmq.IPC_PRIVATE, **kwargs)
        made.append(q.message_queue.id)
        return q

    try:
        yield factory
    finally:
        for msqid in made:
            try:
                sysvmq.MessageQueue.from_id(msqid).destroy()
            except sysvmq.QueueRemovedError:
                pass


class Unknown:
    """A serializer sysvmq knows nothing about: treated like pickle."""

    dumps = staticmethod(pickle.dumps)
    loads = staticmethod(pickle.loads)


CHECKED = [pickle, marshal, Unknown()]
DATA_ONLY = [json, msgpack, None]


class Boom:
    """Unpickling it creates the file at `path`: what a hostile sender would do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (open, (self.path, "w"))


@pytest.mark.parametrize("serializer", CHECKED, ids=repr)
@pytest.mark.parametrize("mode", [0o666, 0o622, 0o620, 0o602])
def test_creating_a_queue_others_may_write_is_refused_before_any_system_call(serializer, mode):
    before = queue_ids()
    with pytest.raises(ValueError, match="trust_senders=True") as raised:
        sysvmq.Queue(sysvmq.IPC_PRIVATE, mode=mode, serializer=serializer)
    assert f"mode={mode:#o}" in str(raised.value)
    assert queue_ids() == before


@pytest.mark.parametrize("serializer", CHECKED, ids=repr)
@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_opening_a_queue_others_may_write_is_refused(make_q, serializer, mode):
    q = make_q(serializer=None)
    q.message_queue.set(mode=mode)
    with pytest.raises(sysvmq.PermissionDeniedError, match="trust_senders=True") as raised:
        sysvmq.Queue.from_id(q.message_queue.id, serializer=serializer)
    assert f"mode {mode:#o}" in str(raised.value)
    assert "write" in str(raised.value)
    trusted = sysvmq.Queue.from_id(q.message_queue.id, serializer=serializer, trust_senders=True)
    trusted.put([1])
    assert trusted.get(timeout=5) == [1]


@pytest.mark.parametrize("serializer", DATA_ONLY, ids=repr)
def test_data_only_serializers_accept_any_queue(make_q, serializer):
    q = make_q(serializer=serializer, mode=0o666)
    assert q.message_queue.stats().mode == 0o666
    q.put(b"data" if serializer is None else ["data"])
    assert q.get(timeout=5) in (b"data", ["data"])


def test_a_queue_others_may_only_read_is_accepted(make_q):
    q = make_q(mode=0o644)
    q.put({"read": "only"})
    assert q.get(timeout=5) == {"read": "only"}


def test_opening_by_key_refuses_too(free_key):
    mq = sysvmq.MessageQueue(free_key, create=True, mode=0o666)
    try:
        with pytest.raises(sysvmq.PermissionDeniedError, match="trust_senders"):
            sysvmq.Queue(free_key)
        with pytest.raises(sysvmq.PermissionDeniedError, match="trust_senders"):
            sysvmq.Queue(free_key, create=True)  # an existing queue, more open than 0o600
    finally:
        mq.destroy()


def test_unpickling_a_queue_checks_the_senders_afresh(make_q):
    q = make_q()
    trusted = sysvmq.Queue.from_id(q.message_queue.id, trust_senders=True)
    q.message_queue.set(mode=0o666)
    with pytest.raises(sysvmq.PermissionDeniedError):
        pickle.loads(pickle.dumps(q))
    copy = pickle.loads(pickle.dumps(trusted))
    assert copy.message_queue.id == q.message_queue.id and copy.serializer is pickle


@root_only
def test_another_users_message_never_runs(make_q, tmp_path):
    """The attack the check stops: another user writes a pickle that runs code."""
    q = make_q(serializer=None)
    q.message_queue.set(mode=0o666)
    marker = str(tmp_path / "ran")
    msqid = q.message_queue.id
    assert as_nobody(lambda: sysvmq.MessageQueue.from_id(msqid).send(pickle.dumps(Boom(marker)))) == ("ok", None)
    with pytest.raises(sysvmq.PermissionDeniedError):
        sysvmq.Queue.from_id(msqid)
    assert not os.path.exists(marker)
    # What trust_senders=True lets through: the test above could fail.
    sysvmq.Queue.from_id(msqid, trust_senders=True).get(timeout=5).close()
    assert os.path.exists(marker)


@root_only
def test_a_queue_owned_by_another_user_is_refused(make_q):
    q = make_q()
    q.message_queue.set(uid=NOBODY)
    with pytest.raises(sysvmq.PermissionDeniedError, match=f"owned by uid {NOBODY}"):
        sysvmq.Queue.from_id(q.message_queue.id)
    assert sysvmq.Queue.from_id(q.message_queue.id, serializer=json).qsize() == 0


@root_only
def test_a_queue_created_by_another_user_is_refused():
    kind, msqid = as_nobody(lambda: sysvmq.MessageQueue(sysvmq.IPC_PRIVATE, mode=0o600).id)
    assert kind == "ok"
    mq = sysvmq.MessageQueue.from_id(msqid)
    try:
        mq.set(uid=os.geteuid())  # ours now, but its creator may still write and change it
        with pytest.raises(sysvmq.PermissionDeniedError, match=f"created by uid {NOBODY}"):
            sysvmq.Queue.from_id(msqid)
    finally:
        mq.destroy()


@root_only
def test_another_user_accepts_its_own_queue_and_one_root_made_for_it(make_q):
    def own() -> Any:
        with sysvmq.Queue(sysvmq.IPC_PRIVATE) as q:
            q.put("mine")
            try:
                return q.get(timeout=5)
            finally:
                q.message_queue.destroy()

    assert as_nobody(own) == ("ok", "mine")
    q = make_q()
    q.message_queue.set(uid=NOBODY)  # made by root, given to nobody
    q.put("from root")
    msqid = q.message_queue.id
    assert as_nobody(lambda: sysvmq.Queue.from_id(msqid).get(timeout=5)) == ("ok", "from root")
    # Made by nobody, given to root: root may write anywhere anyway, so nobody accepts it.
    kind, made = as_nobody(lambda: sysvmq.MessageQueue(sysvmq.IPC_PRIVATE, mode=0o600).id)
    assert kind == "ok"
    mq = sysvmq.MessageQueue.from_id(made)
    try:
        mq.set(uid=0)
        assert as_nobody(lambda: sysvmq.Queue.from_id(made).qsize()) == ("ok", 0)
    finally:
        mq.destroy()


@pytest.mark.parametrize(
    "serializer, garbage, cause",
    [
        (pickle, b"\x80\x05garbage", (pickle.UnpicklingError, ValueError)),  # PyPy's pickle: ValueError
        (json, b"\xff{", ValueError),
        (marshal, b"\xff", ValueError),
        (msgpack, b"\xc1", Exception),
    ],
    ids=repr,
)
def test_a_message_that_does_not_decode_is_handed_over_not_lost(make_q, serializer, garbage, cause):
    q = make_q(serializer=serializer)
    q.message_queue.send(garbage, type=1)
    q.put([2])
    with pytest.raises(sysvmq.MessageDecodeError) as raised:
        q.get(timeout=5)
    error = raised.value
    assert isinstance(error, ValueError)
    assert error.data == garbage and error.type == 1
    assert isinstance(error.__cause__, cause)
    assert "taken off the queue" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.data, copy.type, str(copy)) == (error.data, error.type, str(error))
    assert q.get(timeout=5) == [2]  # the next message is untouched


class ReduceRaises:
    def __reduce__(self) -> Any:
        raise RuntimeError("cannot be pickled")


class LiesAboutItsClass:
    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return int


def test_an_object_that_cannot_be_pickled_sends_nothing(make_q):
    q = make_q()
    with pytest.raises(RuntimeError, match="cannot be pickled"):
        q.put(ReduceRaises())
    try:
        q.put(LiesAboutItsClass())
    except pickle.PicklingError:  # CPython's pickle sees through the lie
        assert q.qsize() == 0
    else:  # PyPy's pickles what the object claims to be: one int(), nothing more
        assert q.get_nowait() == 0
    with pytest.raises((TypeError, pickle.PicklingError)):  # CPython's, PyPy's
        q.put(threading.Lock())
    assert q.qsize() == 0


class LyingBytes(bytes):
    """Real bytes that claim to be a str of length 1."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return str

    def __len__(self) -> int:
        return 1


class LyingStr(str):
    def encode(self, *args: Any, **kwargs: Any) -> bytes:  # type: ignore[override]
        return b"lie"

    def __len__(self) -> int:
        return 10**6


def test_raw_queues_send_the_real_buffer_and_refuse_text(make_q):
    q = make_q(serializer=None)
    q.put(LyingBytes(b"abc"))
    q.put(bytearray(b"\x00\x01"))
    q.put(memoryview(b"view"))
    assert [q.get_nowait() for _ in range(3)] == [b"abc", b"\x00\x01", b"view"]
    for bad in ("text", LyingStr("text"), 12, None, [b"x"]):
        with pytest.raises(TypeError):
            q.put(bad)
    assert q.qsize() == 0


def test_what_dumps_returns_is_checked_and_never_trusted(make_q):
    class Serializer:
        def __init__(self, result: Any) -> None:
            self.result = result

        def dumps(self, obj: Any) -> Any:
            return self.result

        def loads(self, data: bytes) -> bytes:
            return data

    for result, sent in [(LyingBytes(b"abc"), b"abc"), (LyingStr("é"), "é".encode()), (bytearray(b"ba"), b"ba")]:
        q = make_q(serializer=Serializer(result), trust_senders=True)
        q.put("anything")
        assert q.get_nowait() == sent
    q = make_q(serializer=Serializer(42), trust_senders=True)
    with pytest.raises(TypeError, match="dumps returned int, which cannot be sent: it must return bytes-like or str"):
        q.put("anything")
    assert q.qsize() == 0


def test_a_loads_that_exits_propagates_and_leaves_the_message(make_q):
    """BaseException from loads (SystemExit, KeyboardInterrupt) is not disguised as a decode
    error, and the message stays queued (as it does when a signal handler raises there)."""

    class Exits:
        dumps = staticmethod(pickle.dumps)

        @staticmethod
        def loads(data: bytes) -> Any:
            raise SystemExit(3)

    q = make_q(serializer=Exits(), trust_senders=True)
    q.put(1)
    with pytest.raises(SystemExit):
        q.get_nowait()
    assert q.message_queue.receive(block=False) == pickle.dumps(1)


@root_only
def test_a_queue_whose_owner_cannot_be_read_is_refused(make_q):
    q = make_q(serializer=None)
    q.message_queue.set(mode=0o622)  # others may write, not read
    msqid = q.message_queue.id
    kind, error = as_nobody(lambda: sysvmq.Queue.from_id(msqid))
    assert kind == "raised" and isinstance(error, sysvmq.PermissionDeniedError)
    assert "cannot be read" in str(error)
    # A data-only serializer needs no check, and may put to it.
    assert as_nobody(lambda: sysvmq.Queue.from_id(msqid, serializer=json).put([1])) == ("ok", None)
    assert json.loads(q.get_nowait()) == [1]


def test_an_interrupt_while_the_decode_error_is_built_leaves_the_message(make_q, monkeypatch):
    q = make_q(serializer=json)
    q.message_queue.send(b"not json{")

    def interrupted(serializer: Any) -> str:
        raise KeyboardInterrupt("a signal handler, while the error is built")

    monkeypatch.setattr(sysvmq.objqueue, "_serializer_name", interrupted)
    with pytest.raises(KeyboardInterrupt):
        q.get_nowait()
    assert q.message_queue.receive(block=False) == b"not json{"


class Undescribable(Exception):
    """A serializer's error whose text cannot be made (a bug in a third-party library)."""

    def __str__(self) -> str:
        raise TypeError("__str__ of a broken exception")


def test_a_serializer_error_whose_text_cannot_be_made_is_still_a_decode_error_with_the_message(make_q):
    # Not a TypeError from its __str__ with the message put back: a consumer would meet that
    # message again and again, never holding it.
    class Fails:
        dumps = staticmethod(pickle.dumps)

        @staticmethod
        def loads(data: bytes) -> Any:
            raise Undescribable

    q = make_q(serializer=Fails(), trust_senders=True)
    q.put(1)
    with pytest.raises(sysvmq.MessageDecodeError, match=r"\(Undescribable: <exception str\(\) failed>\)") as e:
        q.get_nowait()
    assert (e.value.data, e.value.type) == (pickle.dumps(1), q.type) and isinstance(e.value.__cause__, Undescribable)
    assert q.qsize() == 0


def test_memory_running_out_while_the_decode_error_is_built_leaves_the_message(make_q, monkeypatch):
    q = make_q(serializer=json)
    q.message_queue.send(b"not json{")

    def no_memory(serializer: Any) -> str:
        raise MemoryError

    monkeypatch.setattr(sysvmq.objqueue, "_serializer_name", no_memory)
    with pytest.raises(MemoryError):
        q.get_nowait()
    assert q.message_queue.receive(block=False) == b"not json{"
