"""Permission checks by the kernel, seen from a process that dropped to uid 65534."""

import errno
import os
import pickle
from typing import Any, Callable

import pytest

import sysvmq

NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root")


def as_nobody(action: Callable[[], Any]) -> Any:
    """Run `action` in a forked child that dropped to uid/gid 65534; its result or exception."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                outcome: Any = ("ok", action())
            except BaseException as e:  # report every failure to the parent
                outcome = ("raised", e)
            os.write(write, pickle.dumps(outcome))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


def test_private_0600_queue_refuses_another_user(mq):
    mq.send(b"secret")
    msqid = mq.id
    for action in (
        lambda: sysvmq.MessageQueue.from_id(msqid).receive(block=False),
        lambda: sysvmq.MessageQueue.from_id(msqid).send(b"x", block=False),
        lambda: sysvmq.MessageQueue.from_id(msqid).stats(),
    ):
        kind, value = as_nobody(action)
        assert kind == "raised"
        assert isinstance(value, sysvmq.PermissionDeniedError) and isinstance(value, PermissionError)
        assert value.errno == errno.EACCES
    assert mq.receive() == b"secret"


def test_only_the_owner_may_destroy(mq):
    mq.set(mode=0o666)
    kind, value = as_nobody(lambda: sysvmq.MessageQueue.from_id(mq.id).destroy())
    assert kind == "raised" and isinstance(value, sysvmq.PermissionDeniedError)
    assert value.errno == errno.EPERM
    assert mq.stats().id == mq.id


def test_opening_a_0600_key_asking_for_access_is_denied(make_queue, free_key):
    # As in C, msgget checks only the permission bits the caller asks for.
    make_queue(free_key, create=True)
    kind, value = as_nobody(lambda: sysvmq.MessageQueue(free_key, mode=0o600))
    assert kind == "raised" and isinstance(value, sysvmq.PermissionDeniedError)
    assert as_nobody(lambda: sysvmq.MessageQueue(free_key).key) == ("ok", free_key)


def test_mode_0666_lets_another_user_in(mq):
    mq.set(mode=0o666)
    kind, _ = as_nobody(lambda: sysvmq.MessageQueue.from_id(mq.id).send(b"from nobody", type=9))
    assert kind == "ok"
    stats = mq.stats()
    assert mq.receive_message() == sysvmq.Message(9, b"from nobody")
    assert stats.last_send_pid != os.getpid()


def test_write_only_queue_lists_for_another_user(mq):
    # No read permission: from_id cannot IPC_STAT, yet still learns the key via MSG_STAT_ANY.
    mq.set(mode=0o622)
    kind, value = as_nobody(lambda: sysvmq.MessageQueue.from_id(mq.id).key)
    assert (kind, value) == ("ok", mq.key)
