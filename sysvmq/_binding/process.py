"""The process exits or forks: no message is lost with a thread.

While the interpreter finalizes, a thread that comes back from a system call is stopped
when it asks for the GIL back (CPython 3.9-3.13), or parked for good (3.14): a message
msgrcv handed it then would be gone. So an ``atexit`` handler, which runs while threads
still can, tells the C side the process is exiting (csrc/finish.c): from then on a
receive in any other thread takes nothing (one that took a message in that instant
returns it to the end of its queue): one that would block waits as it would, taking
nothing, until its timeout, ``close()`` or a cancellation ends it (else until the process
ends), and one that would not block finds nothing; each one waiting in the kernel is
woken to do so; and what a receive took just before is waited for, up to FINISH_SECONDS,
until Python has copied it out of its buffer (the buffer's ``held`` reset), so that it
reaches the code that asked for it.

The handler is registered when sysvmq is imported: atexit handlers registered later (an
application's) run before it and may use sysvmq from any thread; handlers that run after
it may still use sysvmq from the thread that exits, and send from any thread; a thread
they join that receives with a timeout returns when it expires, having taken nothing.

A child that ``os.fork()`` made has only the forking thread, which is inside no receive:
what the parent's other threads were inside, or held, is the parent's to hand over, and
the child's exit does not wait for it.
"""

import atexit
import os
import threading
import weakref
from typing import Any, List, Tuple

from sysvmq._binding.c import ffi, lib

__all__ = ["FINISH_SECONDS", "watch_batch", "watch_buffer"]

#: How long an exiting process waits for its threads to hand over what they took.
FINISH_SECONDS = 1.0

#: Every receive buffer (``sysvmq_rbuf *``) and batch (``sysvmq_batch *``) alive. Another
#: thread may make one while the process exits: a set that grows while it is copied fails
#: the copy, so both are changed and copied under _watching.
_buffers: "weakref.WeakSet[Any]" = weakref.WeakSet()
_batches: "weakref.WeakSet[Any]" = weakref.WeakSet()
_watching = threading.Lock()


def watch_buffer(rb: Any) -> None:
    """Have the exiting process wait until Python has what a receive took into `rb`."""
    with _watching:
        _buffers.add(rb)


def watch_batch(batch: Any) -> None:
    """The same for a ``sysvmq_batch *``."""
    with _watching:
        _batches.add(batch)


def watched() -> Tuple[List[Any], List[Any]]:
    """The receive buffers and the batches alive now."""
    with _watching:
        return list(_buffers), list(_batches)


@atexit.register
def _finish() -> None:
    # First: a receive another thread starts from now on takes nothing, so one whose buffer
    # is made after the list below is copied has nothing for the exit to wait for.
    lib.sysvmq_finish_begins()
    buffers, batches = watched()
    lib.sysvmq_finish(
        ffi.new("sysvmq_rbuf *[]", buffers),
        len(buffers),
        ffi.new("sysvmq_batch *[]", batches),
        len(batches),
        FINISH_SECONDS,
    )


def _forked() -> None:
    global _watching
    _watching = threading.Lock()  # a thread that held it does not exist in the child
    lib.sysvmq_forked()
    buffers, batches = watched()
    for rb in buffers:
        rb.held = -1
    for batch in batches:
        batch.held = 0


os.register_at_fork(after_in_child=_forked)
