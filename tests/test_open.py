"""Opening queues: keys, flags, create/exclusive/mode, from_id, max_size."""

import errno
import os
import subprocess

import pytest
from conftest import child_env

import sysvmq


def test_private_queue_is_new_each_time(make_queue):
    a = make_queue(sysvmq.IPC_PRIVATE)
    b = make_queue(sysvmq.IPC_PRIVATE)
    assert a.id != b.id
    assert a.key == b.key == 0
    assert a.stats().mode == 0o600


def test_missing_key_without_create_raises_not_found(free_key):
    with pytest.raises(sysvmq.QueueNotFoundError) as info:
        sysvmq.MessageQueue(free_key)
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.errno == errno.ENOENT
    assert f"{free_key:#010x}" in str(info.value)
    assert "create=True" in str(info.value)


@pytest.mark.parametrize("spelling", ["named", "raw"])
def test_create_both_spellings(make_queue, free_key, spelling):
    if spelling == "named":
        mq = make_queue(free_key, create=True, mode=0o640)
    else:
        mq = make_queue(free_key, flags=sysvmq.IPC_CREAT | 0o640)
    assert mq.key == free_key
    assert mq.stats().mode == 0o640
    assert sysvmq.MessageQueue(free_key).id == mq.id


def test_create_defaults_to_0600(make_queue, free_key):
    assert make_queue(free_key, create=True).stats().mode == 0o600
    assert make_queue(free_key + 1 if free_key < 2**32 - 1 else 1, flags=sysvmq.IPC_CREAT).stats().mode == 0o600


def test_exclusive_on_existing_key_raises_exists(make_queue, free_key):
    make_queue(free_key, create=True)
    for kwargs in ({"create": True, "exclusive": True}, {"flags": sysvmq.IPC_CREAT | sysvmq.IPC_EXCL | 0o600}):
        with pytest.raises(sysvmq.QueueExistsError) as info:
            sysvmq.MessageQueue(free_key, **kwargs)
        assert isinstance(info.value, FileExistsError)
        assert info.value.errno == errno.EEXIST


def test_high_keys_mean_the_same_queue_as_c(make_queue):
    # 0xDEADC0DE as key_t is -559038242; both spellings name one queue, reported unsigned.
    key = 0xDEADC0DE
    existing = {q.key for q in sysvmq.queues()}
    if key in existing:
        pytest.skip("another program uses key 0xdeadc0de on this machine")
    mq = make_queue(key, create=True)
    assert mq.key == key
    assert sysvmq.MessageQueue(key - 2**32).id == mq.id
    assert mq.stats().key == key
    if os.path.exists("/proc/sysvipc/msg"):  # Linux: the kernel's own, signed, view
        with open("/proc/sysvipc/msg") as f:
            keys = [int(line.split()[0]) for line in list(f)[1:]]
        assert -559038242 in keys


@pytest.mark.parametrize("key", [2**32, -(2**31) - 1, 2**64])
def test_keys_outside_key_t_are_refused(key):
    with pytest.raises(OverflowError):
        sysvmq.MessageQueue(key, create=True)


@pytest.mark.parametrize("key", [1.0, "5", None, b"1"])
def test_keys_of_wrong_type_are_refused(key):
    with pytest.raises(TypeError):
        sysvmq.MessageQueue(key, create=True)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"max_size": -1}, ValueError),
        ({"max_size": 1.5}, TypeError),
        ({"max_size": 2**31}, ValueError),
        ({"max_size": 2**64}, OverflowError),
        ({"mode": 0o1000}, ValueError),
        ({"mode": "0600"}, TypeError),
        ({"flags": -1}, ValueError),
        ({"flags": 2**31}, OverflowError),
        ({"flags": 0o1000000}, ValueError),
        ({"exclusive": True}, ValueError),
        ({"create": True, "mode": 0o600, "flags": 0o644}, ValueError),
    ],
)
def test_bad_open_arguments_raise_before_any_syscall(kwargs, error):
    before = sysvmq.limits().queues_in_use
    with pytest.raises(error):
        sysvmq.MessageQueue(sysvmq.IPC_PRIVATE, **kwargs)
    assert sysvmq.limits().queues_in_use == before


def test_max_size_defaults_to_msgmax(mq, limits):
    assert mq.max_size == limits.msgmax
    assert sysvmq.MessageQueue.from_id(mq.id, max_size=100).max_size == 100


def test_from_id_attaches_to_the_same_queue(mq):
    other = sysvmq.MessageQueue.from_id(mq.id)
    assert (other.id, other.key) == (mq.id, mq.key)
    other.send(b"via id")
    assert mq.receive() == b"via id"


def test_from_id_of_ipcmk_queue_reports_its_key(free_key):
    out = subprocess.run(
        ["ipcmk", "-Q", "-p", "0600"], capture_output=True, text=True, check=True, env=child_env()
    ).stdout
    msqid = int(out.split(":")[-1])
    try:
        mq = sysvmq.MessageQueue.from_id(msqid)
        assert mq.key == mq.stats().key != 0
    finally:
        subprocess.run(["ipcrm", "-q", str(msqid)], check=True, env=child_env())


def test_from_id_of_removed_queue_raises_removed():
    mq = sysvmq.MessageQueue(sysvmq.IPC_PRIVATE)
    mq.destroy()
    with pytest.raises(sysvmq.QueueRemovedError) as info:
        sysvmq.MessageQueue.from_id(mq.id)
    assert info.value.errno == errno.EINVAL


@pytest.mark.parametrize("bad", [-1, 2**31, "3", 1.0])
def test_from_id_refuses_bad_ids(bad):
    with pytest.raises((TypeError, ValueError, OverflowError)):
        sysvmq.MessageQueue.from_id(bad)


def test_repr_and_attributes_are_read_only(mq):
    assert f"id={mq.id}" in repr(mq)
    with pytest.raises(AttributeError):
        mq.id = 5  # type: ignore[misc]


def test_pickle_round_trip_attaches_by_id(mq):
    import pickle

    again = pickle.loads(pickle.dumps(mq))
    assert (again.id, again.max_size) == (mq.id, mq.max_size)
