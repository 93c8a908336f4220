"""The calls that are not about one open handle: opening a queue (msgget), msgctl on a
queue's id or on the kernel (IPC_STAT, IPC_SET, IPC_RMID, IPC_INFO, MSG_INFO,
MSG_STAT), ftok, the wake-up signal, the notes the C side keeps for the logger, and
the tokens that cancel one blocking call. They return Python values or raise."""

import errno
import os
import threading
from typing import Any, Dict, List, Optional, Tuple

from sysvmq import _log
from sysvmq._binding.c import IPC_CREAT, IPC_EXCL, IPC_INFO, IPC_PRIVATE, KEY_BITS, MSG_INFO, ffi, lib
from sysvmq.errors import PermissionDeniedError, QueueExistsError, SysVMQError, error_for

__all__ = [
    "KEY_MASK",
    "cancel",
    "choose_wakeup_signal",
    "claim_wakeup_signal",
    "current_wakeup_signal",
    "ftok_key",
    "kernel_info",
    "kernel_msgmax",
    "key_of",
    "monotonic_ns",
    "new_token",
    "open_queue",
    "queue_rows",
    "remove_queue",
    "report",
    "set_queue",
    "signed_key",
    "stat_queue",
]

KEY_MASK = (1 << KEY_BITS) - 1
#: CLOCK_MONOTONIC now, in ns: the clock of every deadline (a C function, called as is).
monotonic_ns = lib.sysvmq_monotonic_ns


def signed_key(key: int) -> int:
    """The signed key_t for a key given as 0..2**32-1 or signed."""
    return key - (1 << KEY_BITS) if key > KEY_MASK >> 1 else key


# ---- opening ----


def open_queue(key: int, flags: int, mode: Optional[int]) -> int:
    """msgget of the signed `key`: the msqid, or the error raised. With IPC_CREAT and an
    explicit `mode`, an existing queue must be as closed as asked (_create_or_open_as_asked)."""
    what = "create a private queue" if key == IPC_PRIVATE else f"open queue key={key & KEY_MASK:#010x}"
    if mode is not None and flags & IPC_CREAT and not flags & IPC_EXCL and key != IPC_PRIVATE:
        return _create_or_open_as_asked(key, flags, mode, what)
    return _msgget(key, flags, what)


def _msgget(key: int, flags: int, what: str) -> int:
    msqid = ffi.new("int *")
    r = lib.sysvmq_get(key, flags, msqid)
    if r < 0:
        raise error_for(-r, what)
    return int(msqid[0])


def _create_or_open_as_asked(key: int, flags: int, mode: int, what: str) -> int:
    """msgget for create=True with a mode.

    IPC_CREAT alone would open a queue someone else made first with other
    permissions, silently: a queue more open than `mode`, or, when `mode` shares
    with no one, a queue of another user, is refused.
    """
    try:
        return _msgget(key, flags | IPC_EXCL, what)
    except QueueExistsError:
        pass
    msqid = _msgget(key, flags & ~IPC_CREAT, what)
    ds = ffi.new("struct msqid_ds *")
    if lib.sysvmq_stat(msqid, ds) < 0:
        return msqid  # no read permission: nothing to compare, and nothing to read either
    owner, existing = ds.msg_perm.uid, ds.msg_perm.mode & 0o777
    if existing & ~mode or (owner != os.geteuid() and not mode & 0o077):
        raise PermissionDeniedError(
            errno.EPERM,
            f"{what}: it exists already, owned by uid {owner} with mode {existing:#o}, which is not "
            f"what mode={mode:#o} asks (another user may have made it first); pass exclusive=True "
            "to insist on a new queue, or leave out mode to accept the existing one as it is",
        )
    return msqid


def key_of(msqid: int) -> Tuple[int, bool]:
    """The signed key of queue `msqid`, and whether it is known (it is not for a queue
    this process may not read and that MSG_STAT_ANY does not list)."""
    ds = ffi.new("struct msqid_ds *")
    r = lib.sysvmq_stat(msqid, ds)
    if r == -errno.EACCES:
        # No read permission: the key is still listed by MSG_STAT_ANY.
        found = [row["key"] for row in queue_rows() if row["id"] == msqid]
        return (signed_key(found[0]), True) if found else (0, False)
    if r < 0:
        raise error_for(-r, f"attach to queue id={msqid}", "no queue has this id" if -r == errno.EINVAL else None)
    return signed_key(lib.sysvmq_perm_key(ds) & KEY_MASK), True


# ---- msgctl ----


def _row(ds: Any, msqid: int) -> Dict[str, int]:
    """The fields of a filled `struct msqid_ds *`, named as QueueStats names them."""
    perm = ds.msg_perm
    return {
        "key": lib.sysvmq_perm_key(ds) & KEY_MASK,
        "id": msqid,
        "mode": perm.mode & 0o777,
        "uid": perm.uid,
        "gid": perm.gid,
        "cuid": perm.cuid,
        "cgid": perm.cgid,
        "count": ds.msg_qnum,
        "bytes": lib.sysvmq_queue_bytes(ds),
        "max_bytes": ds.msg_qbytes,
        "last_send_pid": ds.msg_lspid,
        "last_receive_pid": ds.msg_lrpid,
        "last_send_time": ds.msg_stime,
        "last_receive_time": ds.msg_rtime,
        "last_change_time": ds.msg_ctime,
    }


def stat_queue(msqid: int, key: Optional[int], what: str) -> Dict[str, int]:
    """IPC_STAT of queue `msqid`, whose signed key is `key` if known: its fields (_row)."""
    ds = ffi.new("struct msqid_ds *")
    r = lib.sysvmq_stat(msqid, ds)
    if r < 0:
        raise error_for(-r, what, "reading a queue's stats needs read permission" if -r == errno.EACCES else None)
    if key is not None and lib.sysvmq_perm_key(ds) != key:
        raise error_for(errno.EIDRM, what, "the queue was removed, and its id now names another queue")
    return _row(ds, msqid)


def set_queue(msqid: int, mode: int, uid: int, gid: int, max_bytes: int) -> int:
    """IPC_SET of the fields whose value is >= 0: 0, or -errno."""
    return int(lib.sysvmq_set(msqid, mode, uid, gid, max_bytes))


def remove_queue(msqid: int, what: str) -> None:
    r = lib.sysvmq_remove(msqid)
    if r < 0:
        raise error_for(-r, what)


def kernel_info(cmd: int, name: str, what: str) -> Tuple[int, Dict[str, int]]:
    """msgctl `cmd` (IPC_INFO or MSG_INFO, spelt `name`): the highest slot in use, and the
    fields of the kernel's struct msginfo."""
    info = ffi.new("sysvmq_msginfo *")
    r = lib.sysvmq_info(cmd, info)
    if r < 0:
        raise error_for(-r, f"{what}: msgctl({name})", "")
    fields = ("msgpool", "msgmap", "msgmax", "msgmnb", "msgmni", "msgssz", "msgtql", "msgseg")
    return int(r), {field: int(getattr(info, field)) for field in fields}


def kernel_msgmax() -> int:
    """The kernel's largest message size (kernel.msgmax)."""
    if IPC_INFO is not None:
        try:
            return kernel_info(IPC_INFO, "IPC_INFO", "msgmax")[1]["msgmax"]
        except SysVMQError:
            pass  # what /proc says, then
    try:
        with open("/proc/sys/kernel/msgmax") as f:
            return int(f.read())
    except OSError:
        return 8192  # the System V default, where the platform offers no way to ask


def queue_rows() -> List[Dict[str, int]]:
    """The fields (_row) of every queue this process may see, by MSG_STAT(_ANY) (Linux)."""
    if MSG_INFO is None:
        raise error_for(errno.ENOSYS, "queues: this platform cannot list queues", "")
    highest, _ = kernel_info(MSG_INFO, "MSG_INFO", "queues")
    ds = ffi.new("struct msqid_ds *")
    found = []
    for index in range(highest + 1):
        msqid = lib.sysvmq_stat_index(index, ds)
        if msqid >= 0:
            found.append(_row(ds, msqid))
        elif -msqid not in (errno.EINVAL, errno.EACCES, errno.EIDRM):
            raise error_for(-msqid, f"queues: msgctl(MSG_STAT) on slot {index}", "")
    return found


def ftok_key(path: bytes, proj_id: int, what: str) -> int:
    key = ffi.new("key_t *")
    r = lib.sysvmq_ftok(path, proj_id, key)
    if r < 0:
        raise error_for(-r, what, "the path must name an existing file")
    return int(key[0]) & KEY_MASK


# ---- the wake-up signal ----


def claim_wakeup_signal(signum: int) -> int:
    """sysvmq_set_wakeup_signal: the signal, or -errno (csrc/api.h)."""
    return int(lib.sysvmq_set_wakeup_signal(signum))


def current_wakeup_signal() -> int:
    """The wake-up signal, or 0 while none has been chosen."""
    return int(lib.sysvmq_wakeup_signal())


def choose_wakeup_signal() -> int:
    """Choose the wake-up signal if none is yet, as a wait in this thread would."""
    return int(lib.sysvmq_choose_wakeup_signal())


# ---- tokens: one blocking call cancelled from another thread ----


def new_token() -> Any:
    return ffi.new("sysvmq_token *")


def cancel(token: Any) -> int:
    """Cancel the call that uses `token` and wake it: 1 while it is inside, else 0;
    -EBUSY if no signal can reach its thread."""
    return int(lib.sysvmq_cancel(token))


# ---- the C side's notes, for the "sysvmq" logger ----

_ROOM = 64  # as many notes as the C side keeps
_reporting = threading.Lock()  # held by the one thread that reports, which alone uses the memory below
_notes = ffi.new("sysvmq_event[]", _ROOM)
_dropped = ffi.new("long *")
_KINDS = {
    lib.SYSVMQ_EV_SKIPPED: "skipped",
    lib.SYSVMQ_EV_CHOSEN: "chosen",
    lib.SYSVMQ_EV_NONE_FREE: "none free",
    lib.SYSVMQ_EV_RECLAIMED: "reclaimed",
    lib.SYSVMQ_EV_STAND_IN: "stand-in",
    lib.SYSVMQ_EV_SWITCHED: "switched",
    lib.SYSVMQ_EV_POLLING: "polling",
    lib.SYSVMQ_EV_HELPER: "helper",
    lib.SYSVMQ_EV_RETURNED: "returned",
}
_WHY = {
    lib.SYSVMQ_WHY_HANDLED: "handled",
    lib.SYSVMQ_WHY_IGNORED: "ignored",
    lib.SYSVMQ_WHY_BLOCKED: "blocked",
    lib.SYSVMQ_WHY_REPLACED: "replaced",
    lib.SYSVMQ_WHY_NO_SIGNAL: "no signal",
    lib.SYSVMQ_WHY_NO_HELPER: "no helper",
}


def _forget_lock() -> None:
    global _reporting
    _reporting = threading.Lock()  # a thread that held it does not exist in the child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_lock)


def report() -> None:
    """Log what the C side noted since the last report (a few microseconds when nothing).

    Runs on slow paths only (sysvmq._log says which). A thread inside a report (a logging
    handler, a signal handler that uses sysvmq) does not report again."""
    if not _reporting.acquire(blocking=False):
        return  # another thread reports, or this one is inside a report
    try:
        writer = _log.NotesWriter()
        while True:
            n = lib.sysvmq_take_events(_notes, _ROOM, _dropped)
            writer.dropped(int(_dropped[0]))
            for note in _notes[0:n]:
                why = _WHY.get(note.detail, "") if note.kind in (lib.SYSVMQ_EV_SKIPPED, lib.SYSVMQ_EV_POLLING) else ""
                writer.note(_KINDS.get(note.kind, str(note.kind)), note.signo, note.detail, why, note.value, note.count)
            if n < _ROOM:
                return
    finally:
        _reporting.release()
