"""Snapshots of queues and of the kernel's limits: ``QueueStats``, ``Limits``,
``limits()``, ``queues()`` and ``ftok()``."""

import dataclasses
import errno
import os
from typing import Any, List, Union

from sysvmq._integers import INT_MAX, INT_MIN, check_int
from sysvmq._sysvmq_cffi import ffi, lib
from sysvmq.errors import error_for

__all__ = ["QueueStats", "Limits", "limits", "queues", "ftok"]

KEY_MASK = 0xFFFFFFFF


@dataclasses.dataclass(frozen=True)
class QueueStats:
    """One IPC_STAT snapshot of a queue (what ``ipcs -q -i ID`` prints)."""

    key: int
    """The queue's key, unsigned (0 for IPC_PRIVATE), as ``ipcs`` prints it."""
    id: int
    """The msqid."""
    mode: int
    """Permission bits, e.g. 0o600."""
    uid: int
    gid: int
    cuid: int
    """User id of the creator."""
    cgid: int
    count: int
    """Messages waiting."""
    bytes: int
    """Payload bytes waiting."""
    max_bytes: int
    """The queue's capacity in payload bytes (msg_qbytes)."""
    last_send_pid: int
    last_receive_pid: int
    last_send_time: int
    """Unix time of the last send; 0 if none."""
    last_receive_time: int
    last_change_time: int
    """Unix time of creation or of the last IPC_SET."""

    def as_dict(self) -> "dict[str, Any]":
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Limits:
    """The kernel's message queue limits (IPC_INFO) and its live usage (MSG_INFO)."""

    msgmax: int
    """Largest message, in bytes (sysctl kernel.msgmax)."""
    msgmnb: int
    """Default capacity of a new queue, in bytes (sysctl kernel.msgmnb)."""
    msgmni: int
    """Most queues the system holds (sysctl kernel.msgmni)."""
    queues_in_use: int
    """Queues that exist now."""
    messages_in_use: int
    """Messages waiting in all queues now."""
    bytes_in_use: int
    """Payload bytes waiting in all queues now."""

    def as_dict(self) -> "dict[str, Any]":
        return dataclasses.asdict(self)


def stats_from(ds: Any, msqid: int) -> QueueStats:
    """A QueueStats from a filled `struct msqid_ds *`."""
    perm = ds.msg_perm
    return QueueStats(
        key=lib.sysvmq_perm_key(ds) & KEY_MASK,
        id=msqid,
        mode=perm.mode & 0o777,
        uid=perm.uid,
        gid=perm.gid,
        cuid=perm.cuid,
        cgid=perm.cgid,
        count=ds.msg_qnum,
        bytes=lib.sysvmq_queue_bytes(ds),
        max_bytes=ds.msg_qbytes,
        last_send_pid=ds.msg_lspid,
        last_receive_pid=ds.msg_lrpid,
        last_send_time=ds.msg_stime,
        last_receive_time=ds.msg_rtime,
        last_change_time=ds.msg_ctime,
    )


def _proc_limit(name: str) -> int:
    with open(f"/proc/sys/kernel/{name}") as f:
        return int(f.read())


def limits() -> Limits:
    """The kernel's limits for message queues, and how much of them is in use."""
    info = ffi.new("sysvmq_msginfo *")
    if not lib.SYSVMQ_HAS_IPC_INFO:
        raise error_for(errno.ENOSYS, "limits: this platform has no IPC_INFO", "")
    r = lib.sysvmq_info(lib.SYSVMQ_IPC_INFO, info)
    if r < 0:
        raise error_for(-r, "limits: msgctl(IPC_INFO)", "")
    msgmax, msgmnb, msgmni = info.msgmax, info.msgmnb, info.msgmni
    r = lib.sysvmq_info(lib.SYSVMQ_MSG_INFO, info)
    if r < 0:
        raise error_for(-r, "limits: msgctl(MSG_INFO)", "")
    return Limits(
        msgmax=msgmax,
        msgmnb=msgmnb,
        msgmni=msgmni,
        queues_in_use=info.msgpool,
        messages_in_use=info.msgmap,
        bytes_in_use=info.msgtql,
    )


def msgmax() -> int:
    """The kernel's largest message size (kernel.msgmax)."""
    if lib.SYSVMQ_HAS_IPC_INFO:
        info = ffi.new("sysvmq_msginfo *")
        r = lib.sysvmq_info(lib.SYSVMQ_IPC_INFO, info)
        if r >= 0:
            return int(info.msgmax)
    try:
        return _proc_limit("msgmax")
    except OSError:
        return 8192  # the System V default, where the platform offers no way to ask


def queues() -> List[QueueStats]:
    """Every queue this process may see, as ``ipcs -q`` lists them (Linux)."""
    if not lib.SYSVMQ_HAS_MSG_INFO:
        raise error_for(errno.ENOSYS, "queues: this platform cannot list queues", "")
    info = ffi.new("sysvmq_msginfo *")
    highest = lib.sysvmq_info(lib.SYSVMQ_MSG_INFO, info)
    if highest < 0:
        raise error_for(-highest, "queues: msgctl(MSG_INFO)", "")
    ds = ffi.new("struct msqid_ds *")
    found = []
    for index in range(highest + 1):
        msqid = lib.sysvmq_stat_index(index, ds)
        if msqid >= 0:
            found.append(stats_from(ds, msqid))
        elif -msqid not in (errno.EINVAL, errno.EACCES, errno.EIDRM):
            raise error_for(-msqid, f"queues: msgctl(MSG_STAT) on slot {index}", "")
    return found


def ftok(path: Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"], proj_id: int = 1) -> int:
    """The System V key for an existing file and a project id (1..255), as ftok(3).

    The key is unsigned, like ``MessageQueue.key``. Keys collide cheaply: only the
    low 16 bits of the inode and 8 of the device count, and a new file that reuses
    an inode gets the old file's key.
    """
    proj_id = check_int("proj_id", proj_id, INT_MIN, INT_MAX)
    if not 1 <= proj_id <= 255:
        raise ValueError(f"proj_id must be 1..255 (ftok uses its low 8 bits), not {proj_id}")
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise ValueError("path must not contain a NUL byte")
    key = ffi.new("key_t *")
    r = lib.sysvmq_ftok(raw, proj_id, key)
    if r < 0:
        raise error_for(-r, f"ftok({os.fsdecode(raw)!r}, {proj_id})", "the path must name an existing file")
    return int(key[0]) & KEY_MASK
