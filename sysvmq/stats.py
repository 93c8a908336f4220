"""Snapshots of queues and of the kernel's limits: ``QueueStats``, ``Limits``,
``limits()``, ``queues()`` and ``ftok()``."""

import dataclasses
import errno
import os
from typing import Any, List, Union, cast

from sysvmq._binding import system
from sysvmq._binding.c import IPC_INFO, MSG_INFO
from sysvmq._integers import INT_MAX, INT_MIN, check_int
from sysvmq.errors import error_for

__all__ = ["QueueStats", "Limits", "limits", "queues", "ftok"]


class _Snapshot:
    """What a snapshot offers besides its fields."""

    __slots__ = ()

    def as_dict(self) -> "dict[str, Any]":
        """The fields, by name."""
        return dataclasses.asdict(cast(Any, self))


@dataclasses.dataclass(frozen=True)
class QueueStats(_Snapshot):
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


@dataclasses.dataclass(frozen=True)
class Limits(_Snapshot):
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


def limits() -> Limits:
    """The kernel's limits for message queues, and how much of them is in use."""
    if IPC_INFO is None or MSG_INFO is None:
        missing = " nor ".join(name for name, cmd in (("IPC_INFO", IPC_INFO), ("MSG_INFO", MSG_INFO)) if cmd is None)
        raise error_for(errno.ENOSYS, f"limits: this platform has no {missing}", "")
    _, limit = system.kernel_info(IPC_INFO, "IPC_INFO", "limits")
    _, use = system.kernel_info(MSG_INFO, "MSG_INFO", "limits")
    return Limits(
        msgmax=limit["msgmax"],
        msgmnb=limit["msgmnb"],
        msgmni=limit["msgmni"],
        queues_in_use=use["msgpool"],
        messages_in_use=use["msgmap"],
        bytes_in_use=use["msgtql"],
    )


def queues() -> List[QueueStats]:
    """Every queue this process may see, as ``ipcs -q`` lists them (Linux)."""
    return [QueueStats(**row) for row in system.queue_rows()]


def ftok(path: Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"], proj_id: int = 1) -> int:
    """The System V key for an existing file and a project id (1..255), as ftok(3).

    The key is unsigned, like ``MessageQueue.key``. Keys collide cheaply: only the
    low 16 bits of the inode and 8 of the device count, and a new file that reuses
    an inode gets the old file's key.

    :param path: an existing file (str, bytes or path-like) every process agrees on.
    :param proj_id: a project id, 1 to 255: one file gives a key per project id.
    """
    proj_id = check_int("proj_id", proj_id, INT_MIN, INT_MAX)
    if not 1 <= proj_id <= 255:
        raise ValueError(f"proj_id must be 1..255 (ftok uses its low 8 bits), not {proj_id}")
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise ValueError("path must not contain a NUL byte")
    return system.ftok_key(raw, proj_id, f"ftok({os.fsdecode(raw)!r}, {proj_id})")
