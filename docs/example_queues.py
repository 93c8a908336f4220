"""The docs' doctest build removes the queues its examples made, even after a failed example.

docs/conf.py runs remove_example_queues() after every group of examples, on that group's
namespace. Each example removes its own queues; this is for the one that failed before it got
there. Only the queues of handles the examples bound are touched, never another program's.
"""

from typing import Any, Dict

import sysvmq


def remove_example_queues(namespace: Dict[str, Any]) -> None:
    """Remove the queue of every MessageQueue or Queue in `namespace` that still exists."""
    for value in list(namespace.values()):
        handle = value.message_queue if isinstance(value, sysvmq.Queue) else value
        if not isinstance(handle, sysvmq.MessageQueue):
            continue
        try:
            # A fresh handle: the example's own may be closed (a `with` block ended).
            queue = sysvmq.MessageQueue.from_id(handle.id)
            if queue.stats().key == handle.key:
                queue.destroy()
        except sysvmq.SysVMQError:
            pass  # removed already, as a finished example does
