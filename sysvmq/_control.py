"""Opening a queue (msgget, with the checks around it) and controlling it: IPC_STAT,
IPC_SET, IPC_RMID, and close() of a handle."""

import errno
import os
from typing import Optional, Tuple, TypeVar

from sysvmq._args import OPEN_FLAG_BITS, UINT32_MAX, check_flags, check_key
from sysvmq._integers import INT_MAX, INT_MIN, check_int
from sysvmq._log import report
from sysvmq._lowlevel import QueueCore
from sysvmq._sysvmq_cffi import ffi, lib
from sysvmq.errors import PermissionDeniedError, QueueExistsError, SysVMQError, error_for
from sysvmq.stats import KEY_MASK, QueueStats, limits, queues, stats_from

__all__ = ["QueueControl", "key_of", "open_flags", "open_queue"]

_T = TypeVar("_T")


def open_flags(
    signed_key: int, flags: int, create: bool, exclusive: bool, mode: Optional[int]
) -> Tuple[int, Optional[int]]:
    """The msgget flags for MessageQueue's arguments, and the checked `mode`."""
    flags = check_flags(flags, OPEN_FLAG_BITS, "msgget")
    if mode is not None:
        mode = check_int("mode", mode, 0, 0o777)
        if flags & 0o777 and flags & 0o777 != mode:
            raise ValueError(f"mode {mode:#o} contradicts the permission bits {flags & 0o777:#o} in flags")
        flags |= mode
    if create:
        flags |= lib.IPC_CREAT
    if exclusive:
        if not flags & lib.IPC_CREAT:
            raise ValueError("exclusive=True needs create=True (or IPC_CREAT in flags)")
        flags |= lib.IPC_EXCL
    if (flags & lib.IPC_CREAT or signed_key == lib.IPC_PRIVATE) and mode is None and not flags & 0o777:
        flags |= 0o600
    return flags, mode


def open_queue(signed_key: int, flags: int, mode: Optional[int]) -> int:
    """msgget: the msqid, or the error raised. With IPC_CREAT and an explicit `mode`, an
    existing queue must be as closed as asked (see _create_or_open_as_asked)."""
    what = (
        "create a private queue" if signed_key == lib.IPC_PRIVATE else f"open queue key={signed_key & KEY_MASK:#010x}"
    )
    if mode is not None and flags & lib.IPC_CREAT and not flags & lib.IPC_EXCL and signed_key != lib.IPC_PRIVATE:
        return _create_or_open_as_asked(signed_key, flags, mode, what)
    return _msgget(signed_key, flags, what)


def _msgget(signed_key: int, flags: int, what: str) -> int:
    msqid = ffi.new("int *")
    r = lib.sysvmq_get(signed_key, flags, msqid)
    if r < 0:
        raise error_for(-r, what)
    return int(msqid[0])


def _create_or_open_as_asked(signed_key: int, flags: int, mode: int, what: str) -> int:
    """msgget for create=True with a mode.

    IPC_CREAT alone would open a queue someone else made first with other
    permissions, silently: a queue more open than `mode`, or, when `mode` shares
    with no one, a queue of another user, is refused.
    """
    try:
        return _msgget(signed_key, flags | lib.IPC_EXCL, what)
    except QueueExistsError:
        pass
    msqid = _msgget(signed_key, flags & ~lib.IPC_CREAT, what)
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
        found = [q.key for q in queues() if q.id == msqid]
        return (check_key(found[0]), True) if found else (0, False)
    if r < 0:
        raise error_for(-r, f"attach to queue id={msqid}", "no queue has this id" if -r == errno.EINVAL else None)
    return check_key(lib.sysvmq_perm_key(ds) & KEY_MASK), True


class ClosesOnExit:
    """``with obj:`` closes it at the end; if the body raised, a close error never hides
    that exception. For anything with a ``close()``: handles, sysvmq.Queue."""

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except SysVMQError:
            pass  # the body's exception is the one the caller needs to see


class QueueControl(ClosesOnExit, QueueCore):
    """The control half of a handle: stats(), set(), destroy(), close(), with-blocks."""

    __slots__ = ()

    def _check_open(self, what: str) -> None:
        if lib.sysvmq_is_closed(self._h):
            raise error_for(errno.EBADF, f"{what} {self._describe()}")

    def stats(self) -> QueueStats:
        """One IPC_STAT snapshot: counts, capacity, owner, mode, pids and times."""
        self._check_open("stat")
        ds = ffi.new("struct msqid_ds *")
        r = lib.sysvmq_stat(self._id, ds)
        if r < 0:
            raise error_for(
                -r,
                f"stat {self._describe()}",
                "reading a queue's stats needs read permission" if -r == errno.EACCES else None,
            )
        if self._h.key_known and lib.sysvmq_perm_key(ds) != self._h.key:
            raise error_for(
                errno.EIDRM, f"stat {self._describe()}", "the queue was removed, and its id now names another queue"
            )
        return stats_from(ds, self._id)

    def set(
        self,
        *,
        mode: Optional[int] = None,
        uid: Optional[int] = None,
        gid: Optional[int] = None,
        max_bytes: Optional[int] = None,
    ) -> None:
        """Change the queue's permission bits, owner or capacity (IPC_SET)."""
        values = [
            -1 if mode is None else check_int("mode", mode, 0, 0o777),
            -1 if uid is None else check_int("uid", uid, 0, UINT32_MAX - 1, INT_MIN, UINT32_MAX),
            -1 if gid is None else check_int("gid", gid, 0, UINT32_MAX - 1, INT_MIN, UINT32_MAX),
            # The kernel keeps the capacity in an int: 2**32 would wrap to 0.
            -1 if max_bytes is None else check_int("max_bytes", max_bytes, 1, INT_MAX),
        ]
        self._check_open("set")
        r = lib.sysvmq_set(self._id, *values)
        if r < 0:
            hint = None
            if -r == errno.EPERM and max_bytes is not None:
                hint = (
                    f"a capacity above kernel.msgmnb needs CAP_SYS_RESOURCE; raise sysctl kernel.msgmnb "
                    f"(now {limits().msgmnb}), or only the owner may change the queue"
                )
            raise error_for(-r, f"set {self._describe()}", hint)

    def destroy(self) -> None:
        """Remove the queue (IPC_RMID) for every process; waiting messages are lost."""
        self._check_open("destroy")
        r = lib.sysvmq_remove(self._id)
        if r < 0:
            raise error_for(-r, f"destroy {self._describe()}")

    def close(self) -> None:
        """Close this handle only: wake every thread of this process blocked on it.

        Those calls, and every later one, raise :class:`QueueClosedError`. The
        queue and its messages stay. Closing twice is harmless.
        """
        r = lib.sysvmq_close(self._h)
        report()
        if r < 0:
            raise error_for(
                -r,
                f"close {self._describe()}",
                "the handle is closed, but threads still blocked on it cannot be woken: the "
                "application took (handles or ignores) the signal they wait with, and no other free "
                "signal can reach them; they return when a message arrives (see sysvmq.set_wakeup_signal)",
            )
