"""stats(), set(), destroy(), close(), limits(), queues(), ftok() and the exception table."""

import errno
import os
import pickle
import time

import pytest
from conftest import child_env

import sysvmq


def test_stats_snapshot_has_every_field(mq):
    before = int(time.time()) - 1  # the kernel's seconds may lag time.time() by a clock tick
    mq.send(b"12345", type=2)
    stats = mq.stats()
    assert stats.id == mq.id and stats.key == 0
    assert (stats.count, stats.bytes) == (1, 5)
    assert stats.mode == 0o600
    assert (stats.uid, stats.gid, stats.cuid, stats.cgid) == (os.getuid(), os.getgid(), os.geteuid(), os.getegid())
    assert stats.last_send_pid == os.getpid() and stats.last_receive_pid == 0
    assert stats.last_send_time >= before and stats.last_receive_time == 0
    assert stats.last_change_time >= before - 1
    assert stats.max_bytes == sysvmq.limits().msgmnb
    with pytest.raises(AttributeError):
        stats.count = 3  # type: ignore[misc]
    mq.receive()
    after = mq.stats()
    assert (after.count, after.bytes, after.last_receive_pid) == (0, 0, os.getpid())


def test_set_changes_mode_and_capacity(mq):
    mq.set(mode=0o644, max_bytes=1000)
    stats = mq.stats()
    assert (stats.mode, stats.max_bytes) == (0o644, 1000)
    mq.set(uid=os.getuid(), gid=os.getgid())
    assert mq.stats().mode == 0o644


def test_set_above_msgmnb_names_the_sysctl(mq, limits):
    if os.geteuid() == 0 and _has_cap_sys_resource():
        pytest.skip("this process may raise msg_qbytes past msgmnb")
    with pytest.raises(sysvmq.PermissionDeniedError) as info:
        mq.set(max_bytes=limits.msgmnb + 1)
    assert info.value.errno == errno.EPERM
    assert "kernel.msgmnb" in str(info.value)


def _has_cap_sys_resource() -> bool:
    with open("/proc/self/status") as f:
        caps = next(line for line in f if line.startswith("CapEff:"))
    return bool(int(caps.split()[1], 16) & (1 << 24))


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"mode": 0o1000}, ValueError),
        ({"mode": -1}, ValueError),
        ({"uid": -1}, ValueError),
        ({"uid": 2**32}, OverflowError),
        ({"max_bytes": 0}, ValueError),
        # The kernel keeps the capacity in an int: 2**32 would become 0, 2**32 + 100 would be 100.
        ({"max_bytes": 2**31}, OverflowError),
        ({"max_bytes": 2**32}, OverflowError),
        ({"max_bytes": 2**32 + 100}, OverflowError),
        ({"max_bytes": 1.5}, TypeError),
        ({"gid": "0"}, TypeError),
    ],
)
def test_set_refuses_bad_values(mq, kwargs, error):
    with pytest.raises(error):
        mq.set(**kwargs)
    assert mq.stats().mode == 0o600


def test_destroy_removes_for_everyone(mq):
    other = sysvmq.MessageQueue.from_id(mq.id)
    mq.destroy()
    for call in (other.stats, lambda: other.send(b"x"), lambda: other.receive(block=False), other.destroy):
        with pytest.raises(sysvmq.QueueRemovedError):
            call()


def test_close_is_per_handle_and_idempotent(mq):
    other = sysvmq.MessageQueue.from_id(mq.id)
    with other:
        other.send(b"kept")
    assert other.closed and not mq.closed
    other.close()
    for call in (other.stats, lambda: other.send(b"x"), other.receive, other.destroy, lambda: other.set(mode=0o600)):
        with pytest.raises(sysvmq.QueueClosedError) as info:
            call()
        assert info.value.errno == errno.EBADF
    assert mq.receive() == b"kept"
    assert "closed" in repr(other)


# Every call on a closed handle, and the operation its error must name.
ON_A_CLOSED_HANDLE = {
    "send": (lambda mq: mq.send(b"x"), "send to"),
    "send_many": (lambda mq: mq.send_many([b"x"]), "send to"),
    "receive": (lambda mq: mq.receive(timeout=1), "receive from"),
    "receive_message": (lambda mq: mq.receive_message(), "receive from"),
    "receive_into": (lambda mq: mq.receive_into(bytearray(8)), "receive from"),
    "receive_many": (lambda mq: mq.receive_many(5), "receive from"),
    "peek": (lambda mq: mq.peek(3), "peek at message 3 of"),
    "stats": (lambda mq: mq.stats(), "stat"),
    "set": (lambda mq: mq.set(mode=0o600), "set"),
    "destroy": (lambda mq: mq.destroy(), "destroy"),
}


@pytest.mark.parametrize("call, operation", ON_A_CLOSED_HANDLE.values(), ids=ON_A_CLOSED_HANDLE.keys())
def test_an_error_on_a_closed_handle_names_the_operation(mq, call, operation):
    mq.send(b"kept")
    other = sysvmq.MessageQueue.from_id(mq.id)
    other.close()
    with pytest.raises(sysvmq.QueueClosedError, match=rf"^\[Errno {errno.EBADF}\] .*: {operation} queue key=0x"):
        call(other)
    assert mq.stats().count == 1


@pytest.mark.skipif(not hasattr(sysvmq, "MSG_COPY"), reason="MSG_COPY is Linux's")
def test_peek_at_a_message_larger_than_max_size_says_how_to_peek_at_it(mq):
    mq.send(b"x" * 100)
    small = sysvmq.MessageQueue.from_id(mq.id, max_size=10)
    with pytest.raises(sysvmq.MessageTooLargeError, match=r"peek at message 0 of .*max_size=10 bytes; peek with"):
        small.peek(0)
    assert mq.stats().count == 1


def test_limits_match_proc(limits):
    for name in ("msgmax", "msgmnb", "msgmni"):
        with open(f"/proc/sys/kernel/{name}") as f:
            assert getattr(limits, name) == int(f.read())


@pytest.mark.parametrize(
    "missing", [("IPC_INFO",), ("MSG_INFO",), ("IPC_INFO", "MSG_INFO")], ids=["ipc_info", "msg_info", "both"]
)
def test_limits_where_the_platform_lacks_a_command_names_each_one_missing(monkeypatch, missing):
    import sysvmq.stats

    for name in missing:
        monkeypatch.setattr(sysvmq.stats, name, None)
    with pytest.raises(sysvmq.SysVMQError, match=r": limits: this platform has no " + " nor ".join(missing) + "$") as e:
        sysvmq.limits()
    assert e.value.errno == errno.ENOSYS


def test_the_largest_message_is_read_from_proc_where_ipc_info_fails(monkeypatch, limits):
    from sysvmq._binding import system

    def failing(cmd, name, what):
        raise sysvmq.SysVMQError(errno.EINVAL, f"{what}: msgctl({name})")

    assert system.kernel_msgmax() == limits.msgmax
    monkeypatch.setattr(system, "kernel_info", failing)
    with open("/proc/sys/kernel/msgmax") as f:
        assert system.kernel_msgmax() == int(f.read())
    monkeypatch.setattr(system, "IPC_INFO", None)
    assert system.kernel_msgmax() == limits.msgmax


def test_limits_count_live_usage(make_queue):
    before = sysvmq.limits()
    mq = make_queue(sysvmq.IPC_PRIVATE)
    mq.send(b"x" * 10)
    after = sysvmq.limits()
    assert after.queues_in_use >= before.queues_in_use + 1
    assert after.bytes_in_use >= before.bytes_in_use + 10


def test_queues_lists_what_ipcs_lists(make_queue, free_key):
    import subprocess

    mq = make_queue(free_key, create=True)
    mine = [q for q in sysvmq.queues() if q.id == mq.id]
    assert len(mine) == 1 and mine[0].key == free_key
    ipcs = subprocess.run(["ipcs", "-q"], capture_output=True, text=True, check=True, env=child_env()).stdout
    assert f"{free_key:#010x}" in ipcs
    listed = {q.id for q in sysvmq.queues()}
    for line in ipcs.splitlines():
        fields = line.split()
        if fields and fields[0].startswith("0x"):
            assert int(fields[1]) in listed


def test_ftok_matches_the_formula(tmp_path):
    path = tmp_path / "keyfile"
    path.write_text("x")
    st = os.stat(path)
    expected = (st.st_ino & 0xFFFF) | ((st.st_dev & 0xFF) << 16) | (0x41 << 24)
    assert sysvmq.ftok(path, 0x41) == expected
    assert sysvmq.ftok(str(path), 0xC1) == expected | (0x80 << 24)  # unsigned, like MessageQueue.key
    with pytest.raises(sysvmq.QueueNotFoundError):
        sysvmq.ftok(tmp_path / "missing")
    for bad, error in ((0, ValueError), (256, ValueError), (1.0, TypeError)):
        with pytest.raises(error):
            sysvmq.ftok(path, bad)


@pytest.mark.parametrize(
    "cls, builtin, code",
    [
        (sysvmq.QueueNotFoundError, FileNotFoundError, errno.ENOENT),
        (sysvmq.QueueExistsError, FileExistsError, errno.EEXIST),
        (sysvmq.PermissionDeniedError, PermissionError, errno.EACCES),
        (sysvmq.QueueEmptyError, BlockingIOError, errno.ENOMSG),
        (sysvmq.QueueFullError, BlockingIOError, errno.EAGAIN),
        (sysvmq.QueueTimeoutError, TimeoutError, errno.ETIMEDOUT),
        (sysvmq.QueueEmptyTimeoutError, TimeoutError, errno.ETIMEDOUT),
        (sysvmq.QueueFullTimeoutError, TimeoutError, errno.ETIMEDOUT),
    ],
)
def test_exceptions_are_also_builtins(cls, builtin, code):
    error = cls(code, "what happened")
    assert isinstance(error, sysvmq.SysVMQError) and isinstance(error, OSError) and isinstance(error, builtin)
    assert error.errno == code and error.strerror == os.strerror(code)
    assert str(error) == f"[Errno {code}] {os.strerror(code)}: what happened"
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is cls and again.errno == code and again.detail == "what happened"


def test_every_exception_class_has_a_docstring():
    for name in sysvmq.__all__:
        obj = getattr(sysvmq, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert obj.__doc__ and len(obj.__doc__) > 20, name


def test_constants_come_from_the_headers():
    assert (sysvmq.IPC_CREAT, sysvmq.IPC_EXCL, sysvmq.IPC_NOWAIT) == (0o1000, 0o2000, 0o4000)
    assert (sysvmq.IPC_RMID, sysvmq.IPC_SET, sysvmq.IPC_STAT, sysvmq.IPC_INFO) == (0, 1, 2, 3)
    assert (sysvmq.MSG_NOERROR, sysvmq.MSG_EXCEPT, sysvmq.MSG_COPY) == (0o10000, 0o20000, 0o40000)
    assert (sysvmq.MSG_STAT, sysvmq.MSG_INFO, sysvmq.IPC_PRIVATE) == (11, 12, 0)
    assert isinstance(sysvmq.__version__, str)
