"""``Queue``: the ``queue.Queue`` / ``multiprocessing.Queue`` interface over a System V
message queue, for Python objects passed between unrelated processes.

Each object travels as one message of the Queue's ``type``, serialized with its
``serializer`` (pickle by default). Built on the public :class:`MessageQueue`.
"""

import errno
import importlib
import os
import pickle
import types
from typing import Any, Optional, Protocol, Tuple, TypeVar

from sysvmq._args import WAIT_FOREVER, Options, check_send_type, exact_type, receive_options, seconds_text
from sysvmq._binding.c import IPC_NOWAIT
from sysvmq._integers import check_int, type_name
from sysvmq.errors import (
    MessageDecodeError,
    MessageTooLargeError,
    PermissionDeniedError,
    QueueEmptyError,
    QueueEmptyTimeoutError,
    QueueFullError,
    QueueFullTimeoutError,
    QueueTimeoutError,
)
from sysvmq.queue import ClosesOnExit, MessageQueue

__all__ = ["Queue", "Serializer"]

_NOWAIT = Options(IPC_NOWAIT, -1, None)


class Serializer(Protocol):
    """What ``Queue(serializer=...)`` takes: the pickle, json, marshal and msgpack modules are ones."""

    def dumps(self, obj: Any, /) -> Any:
        """`obj` as bytes (or str, sent as UTF-8).

        :param obj: the object :meth:`Queue.put` was given.
        """

    def loads(self, data: bytes, /) -> Any:
        """The object that `data` (what dumps returned, as bytes) describes.

        :param data: a message's payload.
        """


_T = TypeVar("_T")

#: Serializers whose ``loads`` only builds data: any sender may write to their queues.
_DATA_ONLY = frozenset({"json", "msgpack"})


def _serializer_name(serializer: Any) -> str:
    if isinstance(serializer, types.ModuleType):
        return serializer.__name__
    return type_name(serializer)


def _text_of(error: BaseException) -> str:
    """`str(error)`, or what a traceback shows where a third-party exception's own
    ``__str__`` fails: a decode error is still built, and still carries its message."""
    try:
        return str(error)
    except Exception:
        return "<exception str() failed>"


def _needs_trust(serializer: Any) -> bool:
    """Whether `serializer`'s loads may run code or crash on a hostile message.

    pickle runs whatever a message says; marshal may crash the interpreter on
    crafted input; a serializer sysvmq does not know is treated like them.
    """
    if serializer is None:
        return False
    return not (isinstance(serializer, types.ModuleType) and serializer.__name__ in _DATA_ONLY)


def _check_serializer(serializer: Any) -> None:
    if serializer is None:
        return
    missing = [name for name in ("dumps", "loads") if not callable(getattr(serializer, name, None))]
    if missing:
        raise TypeError(
            f"serializer must have dumps(obj) and loads(data), as the pickle, json and marshal "
            f"modules do (or be None for raw bytes); {_serializer_name(serializer)} lacks "
            f"{' and '.join(missing)}"
        )


def _untrusted_writers(mq: MessageQueue) -> Optional[str]:
    """Why users other than this one (and root) may write to `mq`; None if they may not."""
    try:
        stats = mq.stats()
    except PermissionDeniedError:
        return "its owner and mode cannot be read (no read permission), so it is not yours"
    me = os.geteuid()
    reasons = []
    if stats.mode & 0o022:
        who = {0o020: "its group", 0o002: "every user", 0o022: "its group and every user"}[stats.mode & 0o022]
        reasons.append(f"its mode {stats.mode:#o} lets {who} write")
    if stats.uid not in (me, 0):
        reasons.append(f"it is owned by uid {stats.uid}")
    if stats.cuid not in (me, 0) and stats.cuid != stats.uid:
        reasons.append(f"it was created by uid {stats.cuid}")
    return "; ".join(reasons) or None


class Queue(ClosesOnExit):
    """A ``queue.Queue`` / ``multiprocessing.Queue`` for unrelated processes.

    ``Queue(key)`` opens the System V queue with that key (``create=True``:
    make it if needed, ``exclusive=True``: only if new, with permission bits
    ``mode``, default 0o600), as :class:`MessageQueue` does. Objects go in as
    messages of type `type` (>= 1) and only messages of that type come out, so
    queues of different types share one kernel queue without mixing.

    `serializer` is any object with ``dumps(obj)`` (returning bytes, or str,
    sent as UTF-8) and ``loads(data)`` (given bytes): the ``pickle``, ``json``,
    ``marshal`` and ``msgpack`` modules as they are. ``None`` sends and returns
    raw bytes. pickle runs whatever code a message holds, and marshal can crash
    the interpreter: with those (and any serializer other than json, msgpack or
    None) the Queue refuses a kernel queue that users other than you may write
    to, unless ``trust_senders=True`` says you trust everyone who can.

    ``put`` returns once the message is in the kernel: nothing is held in this
    process, so nothing is lost when it exits. One Queue may be shared by
    threads, inherited through ``fork`` and pickled (it travels as its queue's
    id, its serializer, type and trust).

    :param key: the queue's key, as for :class:`MessageQueue`.
    :param create: make the queue if the key has none.
    :param exclusive: with `create`, insist on a new queue.
    :param mode: the permission bits of a new queue (default 0o600); as for
        :class:`MessageQueue`. A mode that lets other users write is refused
        (``ValueError``, before anything is made) unless the serializer only
        builds data or `trust_senders` is true.
    :param serializer: what turns objects into messages and back: any object with
        ``dumps`` and ``loads`` (:class:`Serializer`); ``None`` for raw bytes.
    :param type: the message type every ``put`` sends and the only one ``get``
        takes, 1 to LONG_MAX.
    :param trust_senders: accept, with a serializer that may run code (pickle,
        marshal, any but json, msgpack and None), a kernel queue that users other
        than you may write to.
    """

    __slots__ = ("_mq", "_type", "_serializer", "_dumps", "_loads", "_trust", "_send", "_receive_then")
    _serializer: Optional[Serializer]

    def __init__(
        self,
        key: int,
        *,
        create: bool = False,
        exclusive: bool = False,
        mode: Optional[int] = None,
        serializer: Optional[Serializer] = pickle,
        type: int = 1,
        trust_senders: bool = False,
    ) -> None:
        self._configure(serializer, type, trust_senders)
        if mode is not None and self._must_check(trust_senders):
            mode = check_int("mode", mode, 0, 0o777)
            if mode & 0o022:
                raise ValueError(self._refusal(f"mode={mode:#o} would let other users write to it"))
        self._attach(MessageQueue(key, create=create, exclusive=exclusive, mode=mode))

    @classmethod
    def from_id(
        cls, id: int, *, serializer: Optional[Serializer] = pickle, type: int = 1, trust_senders: bool = False
    ) -> "Queue":
        """A Queue on the existing queue with msqid `id` (what ``ipcs -q`` prints).

        :param id: the queue's msqid.
        :param serializer: what turns objects into messages and back, as for :class:`Queue`.
        :param type: the message type this Queue puts and gets, 1 to LONG_MAX.
        :param trust_senders: accept a queue others may write to, as for :class:`Queue`.
        """
        q = cls.__new__(cls)
        q._configure(serializer, type, trust_senders)
        q._attach(MessageQueue.from_id(id))
        return q

    def _configure(self, serializer: Optional[Serializer], type: int, trust_senders: bool) -> None:
        """Check the arguments (before any system call) and keep them."""
        _check_serializer(serializer)
        self._type = check_send_type(type)
        if exact_type(trust_senders) is not bool:
            raise TypeError(f"trust_senders must be True or False, not {type_name(trust_senders)}")
        self._serializer = serializer
        self._dumps = None if serializer is None else serializer.dumps
        self._loads = None if serializer is None else serializer.loads
        self._trust = trust_senders

    def _must_check(self, trust_senders: bool) -> bool:
        return not trust_senders and _needs_trust(self._serializer)

    def _refusal(self, why: str) -> str:
        name = _serializer_name(self._serializer)
        return (
            f"serializer={name} runs (or may crash on) whatever a sender writes, and {why}. Use a queue "
            f"only you may write to (owned and created by you, mode 0o600: MessageQueue.set(mode=0o600)), "
            f"or serializer=json, msgpack or None, or pass trust_senders=True if you trust every user "
            f"who can write to it"
        )

    def _attach(self, mq: MessageQueue) -> None:
        if self._must_check(self._trust):
            why = _untrusted_writers(mq)
            if why is not None:
                mq.close()
                raise PermissionDeniedError(
                    errno.EPERM, f"open queue key={mq.key:#010x} id={mq.id}: {self._refusal(why)}"
                )
        self._mq = mq
        self._send = mq.send
        self._receive_then = mq._receive_then

    # ---- attributes ----

    @property
    def message_queue(self) -> MessageQueue:
        """The underlying :class:`MessageQueue` (stats(), set(), destroy(), ...)."""
        return self._mq

    @property
    def type(self) -> int:
        """The message type this Queue puts, and the only one it gets."""
        return self._type

    @property
    def serializer(self) -> Optional[Serializer]:
        """The object whose dumps/loads turn objects into messages and back; None for raw bytes."""
        return self._serializer

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._mq.closed

    def __repr__(self) -> str:
        state = " closed" if self._mq.closed else ""
        return (
            f"<sysvmq.Queue key={self._mq.key:#010x} id={self._mq.id} type={self._type} "
            f"serializer={_serializer_name(self._serializer)}{state}>"
        )

    def __reduce__(self) -> Tuple[Any, ...]:
        serializer = self._serializer
        spec = ("module", serializer.__name__) if isinstance(serializer, types.ModuleType) else ("object", serializer)
        return (_restore, (self._mq.id, spec, self._type, self._trust))

    # ---- putting ----

    def _encode(self, obj: Any) -> Any:
        """`obj` as a message payload, raising before anything is sent."""
        dumps = self._dumps
        if dumps is None:
            if exact_type(obj) is bytes:
                return obj
            if issubclass(exact_type(obj), str):  # its real class: __class__ may lie
                raise TypeError("a raw Queue (serializer=None) carries bytes: encode the str, or use serializer=json")
            data = obj
        else:
            data = dumps(obj)
            if exact_type(data) is bytes:
                return data
            if issubclass(exact_type(data), str):
                return str.encode(data, "utf-8")  # not data.encode(): a subclass may lie
        try:
            # A view of the real buffer: whatever class or length the object claims.
            return memoryview(data)
        except TypeError:
            if dumps is None:
                raise TypeError(
                    f"a raw Queue (serializer=None) carries bytes-like objects, not {type_name(data)}"
                ) from None
            raise TypeError(
                f"{_serializer_name(self._serializer)}.dumps returned {type_name(data)}, which cannot be sent: "
                f"it must return bytes-like or str"
            ) from None

    def put(self, obj: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        """Put `obj` in the queue, waiting for room as :meth:`queue.Queue.put` does.

        With ``block=False`` (where `timeout` is ignored), or once `timeout`
        seconds (>= 0) have passed, a full queue raises :class:`queue.Full`
        (a :class:`QueueFullError`). An object that serializes to more than the
        kernel or the queue can ever hold raises :class:`MessageTooLargeError`.
        A serializer's error is raised as it is, and nothing is sent.

        :param obj: the object, which the serializer turns into the message.
        :param block: ``False`` raises :class:`queue.Full` at once when there is no room.
        :param timeout: the most seconds to wait for room (>= 0, any real number);
            ``None`` waits forever. Ignored when `block` is false.
        """
        data = self._encode(obj)
        try:
            self._put(data, block, timeout)
        finally:  # a view of the caller's buffer: no export outlives the call (sysvmq._binding.c.exported)
            if exact_type(data) is memoryview:
                data.release()

    def _put(self, data: Any, block: bool, timeout: Optional[float]) -> None:
        try:
            if block and timeout is None:
                self._send(data, self._type)
            elif not block:
                try:
                    self._send(data, self._type, block=False)
                except QueueFullError as e:
                    raise QueueFullError(e.errno, f"put to {self._where()}: no room now") from None
            else:
                try:
                    self._send(data, self._type, timeout=timeout)
                except QueueTimeoutError:
                    raise QueueFullTimeoutError(
                        errno.ETIMEDOUT,
                        f"put to {self._where()}: no room within the timeout of {seconds_text(timeout)} s",
                    ) from None
        except MessageTooLargeError as e:
            what = (
                "the bytes are"
                if self._dumps is None
                else f"the object, as {_serializer_name(self._serializer)} serializes it, is"
            )
            raise MessageTooLargeError(
                e.errno, f"put to {self._where()}: {what} too large for one message; {e.detail}"
            ) from None

    def put_nowait(self, obj: Any) -> None:
        """``put(obj, block=False)``: :class:`queue.Full` at once if there is no room.

        :param obj: the object, which the serializer turns into the message.
        """
        self.put(obj, False)

    # ---- getting ----

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """Remove and return the next object of this Queue's type, as :meth:`queue.Queue.get` does.

        With ``block=False`` (where `timeout` is ignored), or once `timeout`
        seconds (>= 0) have passed, raises :class:`queue.Empty` (a
        :class:`QueueEmptyError`). A message that ``loads`` cannot read raises
        :class:`MessageDecodeError`; it was taken off the queue, and the error
        holds its bytes (``.data``). A ``KeyboardInterrupt`` or ``SystemExit``
        after the take (a signal handler's, while ``loads`` runs) puts the
        message back at the end of the queue.

        :param block: ``False`` raises :class:`queue.Empty` at once when nothing waits.
        :param timeout: the most seconds to wait (>= 0, any real number); ``None``
            waits forever. Ignored when `block` is false.
        """
        if block and timeout is None:
            options = WAIT_FOREVER
        elif not block:
            options = _NOWAIT
        else:
            options = Options(*receive_options(self._type, 0, True, timeout, False, False), timeout)
        # The message is the caller's once loads has run, or once loads' failure holds its
        # bytes; anything else that stops this call returns it to the queue (the return
        # rule: sysvmq._binding.handle).
        try:
            return self._receive_then(self._type, options, self._decode)
        except QueueEmptyError as e:
            if exact_type(e) is not QueueEmptyError:
                raise
            raise QueueEmptyError(e.errno, f"get from {self._where()}: nothing waiting") from None
        except QueueTimeoutError:
            raise QueueEmptyTimeoutError(
                errno.ETIMEDOUT,
                f"get from {self._where()}: nothing arrived within the timeout of {seconds_text(timeout)} s",
            ) from None

    def _decode(self, data: bytes) -> Any:
        loads = self._loads
        if loads is None:
            return data
        try:
            return loads(data)
        except Exception as e:
            raise self._decode_error(data, e) from e

    def _decode_error(self, data: bytes, e: Exception) -> MessageDecodeError:
        return MessageDecodeError(
            data,
            self._type,
            f"get from {self._where()}: {_serializer_name(self._serializer)}.loads failed on a "
            f"message of {len(data)} bytes ({type_name(e)}: {_text_of(e)}); the message was taken off the queue, "
            f"its bytes are on this exception as .data",
        )

    def get_nowait(self) -> Any:
        """``get(block=False)``: :class:`queue.Empty` at once if nothing is waiting."""
        return self.get(False)

    # ---- state ----

    def qsize(self) -> int:
        """How many messages wait in the kernel queue, of every type (one IPC_STAT)."""
        return self._mq.stats().count

    def empty(self) -> bool:
        """Whether no message of any type waits (``qsize() == 0``); a snapshot."""
        return self.qsize() == 0

    def full(self) -> bool:
        """Whether the queue has no room now for even a one-byte message.

        That is, the waiting bytes have reached its capacity
        (``stats().max_bytes``), or, as Linux also counts, the number of messages
        has; then put_nowait() raises :class:`queue.Full` for any object (all
        but an empty raw message). A snapshot, as the stdlib's: when it is False,
        a large object may still not fit.
        """
        stats = self._mq.stats()
        return stats.bytes >= stats.max_bytes or stats.count >= stats.max_bytes

    def close(self) -> None:
        """Close this Queue's handle: threads blocked in get() or put() raise
        :class:`QueueClosedError`, and so does every later call. The kernel queue
        and its messages stay (``message_queue.destroy()`` removes them)."""
        self._mq.close()

    def _where(self) -> str:
        return f"queue key={self._mq.key:#010x} id={self._mq.id} type={self._type}"


def _restore(msqid: int, spec: Tuple[str, Any], type: int, trust_senders: bool) -> Queue:
    """Unpickle a Queue: attach to its queue by id, checking the senders afresh."""
    kind, value = spec
    serializer = importlib.import_module(value) if kind == "module" else value
    return Queue.from_id(msqid, serializer=serializer, type=type, trust_senders=trust_senders)
