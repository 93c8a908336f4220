"""The public API from a user's seat: mypy --strict checks this file (it is never run).

A line that misuses the API carries `# type: ignore[code]`; with warn_unused_ignores
(part of --strict) mypy fails if that misuse ever stops being caught.
"""

import array
import asyncio
import json
import marshal
import pickle
import queue
from typing import List, Tuple

import sysvmq

mq = sysvmq.MessageQueue(0xDEADC0DE, create=True, mode=0o600)
other = sysvmq.MessageQueue.from_id(mq.id, max_size=1024)
key: int = mq.key
size: int = other.max_size

# Anything with the buffer protocol, or str, is a payload.
mq.send(b"bytes")
mq.send(bytearray(b"bytearray"), type=2, block=False)
mq.send(memoryview(b"memoryview"), timeout=1.5)
mq.send(array.array("B", [1, 2]))
mq.send("text, sent as UTF-8")
mq.send(12345)  # type: ignore[arg-type]
mq.send(None)  # type: ignore[arg-type]
mq.send(b"x", type="1")  # type: ignore[arg-type]

data: bytes = mq.receive()
message: sysvmq.Message = mq.receive_message(-10, timeout=0.5, truncate=True)
message_type: int = message.type
payload: bytes = message.data
nbytes, got_type = mq.receive_into(bytearray(64), exclude=True, type=3)
batch: List[bytes] = mq.receive_many(64, block=False)
sent: int = mq.send_many([b"a", bytearray(b"b"), "c"])
peeked: sysvmq.Message = mq.peek(0)
wrong: str = mq.receive()  # type: ignore[assignment]
mq.receive(timeout="1")  # type: ignore[arg-type]

stats: sysvmq.QueueStats = mq.stats()
count: int = stats.count
mq.set(mode=0o640, max_bytes=65536)
limits: sysvmq.Limits = sysvmq.limits()
every: List[sysvmq.QueueStats] = sysvmq.queues()
derived: int = sysvmq.ftok("/tmp", 7)
signal_number: int = sysvmq.wakeup_signal()


async def use_async() -> Tuple[bytes, sysvmq.Message]:
    await mq.send_async(b"job", type=2, timeout=5)
    data = await mq.receive_async(2, timeout=5)
    message = await mq.receive_message_async(-10)
    return data, message


asyncio.run(use_async())

for each in mq:
    each_type: int = each.type
steps: sysvmq.Messages = mq.messages(-10, timeout=1.5, truncate=True)
first: sysvmq.Message = next(steps)
mq.messages(timeout="1")  # type: ignore[arg-type]
mq.messages(flags=0)  # type: ignore[call-arg]


async def iterate() -> List[sysvmq.Message]:
    return [m async for m in mq] + [m async for m in mq.messages(2, timeout=0)]


try:
    mq.receive(block=False)
except queue.Empty:  # QueueEmptyError is also the stdlib's queue.Empty
    pass
except sysvmq.QueueTimeoutError as e:
    code: int = e.errno

with sysvmq.MessageQueue(sysvmq.IPC_PRIVATE) as private:
    private.destroy()
mq.close()

# sysvmq.Queue: objects in, objects out, with the stdlib's exceptions.
objects = sysvmq.Queue(0xC0FFEE, create=True, serializer=json, type=2)
objects.put({"job": 1}, timeout=1.5)
objects.put_nowait([1, 2])
job: object = objects.get(block=False)
objects.get_nowait()
waiting: int = objects.qsize()
state: Tuple[bool, bool] = (objects.empty(), objects.full())
underneath: sysvmq.MessageQueue = objects.message_queue
raw = sysvmq.Queue.from_id(underneath.id, serializer=None, type=3)
for module in (pickle, marshal):
    sysvmq.Queue.from_id(underneath.id, serializer=module, trust_senders=True).close()
objects.put(1, timeout="1")  # type: ignore[arg-type]
sysvmq.Queue(1, type="2")  # type: ignore[arg-type]
sysvmq.Queue(1, serializer=42)  # type: ignore[arg-type]
try:
    objects.get(timeout=0)
except queue.Empty:
    pass
except sysvmq.MessageDecodeError as undecodable:
    taken: bytes = undecodable.data
with raw:
    raw.message_queue.destroy()
