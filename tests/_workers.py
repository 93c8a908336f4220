"""Processes for the reliability tests: `python _workers.py ROLE ARGS...`.

Every message carries (producer, sequence, crc32 of the body) in its first 16 bytes,
so a consumer can tell lost, duplicated and corrupted messages apart.
"""

import os
import random
import struct
import sys
import time
import zlib

import sysvmq

HEADER = struct.Struct("<IIQ")  # producer, sequence, crc32


def make(producer: int, seq: int, size: int) -> bytes:
    body = os.urandom(max(0, size - HEADER.size))
    return HEADER.pack(producer, seq, zlib.crc32(body)) + body


def check(data: bytes) -> "tuple[int, int]":
    producer, seq, crc = HEADER.unpack_from(data)
    if zlib.crc32(data[HEADER.size :]) != crc:
        raise SystemExit(f"corrupted message from producer {producer}, sequence {seq}")
    return producer, seq


def produce(qid: int, producer: int, count: int, max_size: int, types: int, batch: int) -> None:
    mq = sysvmq.MessageQueue.from_id(qid)
    seq = 0
    while seq < count:
        n = min(batch, count - seq)
        sizes = [random.randint(HEADER.size, max_size) for _ in range(n)]
        mtype = 1 + (producer + seq) % types
        messages = [make(producer, seq + i, size) for i, size in enumerate(sizes)]
        if batch > 1:
            mq.send_many(messages, type=mtype)
        else:
            mq.send(messages[0], type=mtype)
        seq += n


def consume(qid: int, mtype: int, batch: int, idle: float) -> None:
    """Print "producer seq type" per message until nothing comes for `idle` seconds."""
    mq = sysvmq.MessageQueue.from_id(qid)
    out = sys.stdout
    while True:
        try:
            if batch > 1:
                for data in mq.receive_many(batch, mtype, timeout=idle):
                    producer, seq = check(data)
                    out.write(f"{producer} {seq} {mtype}\n")
            else:
                message = mq.receive_message(mtype, timeout=idle)
                producer, seq = check(message.data)
                out.write(f"{producer} {seq} {message.type}\n")
        except sysvmq.QueueTimeoutError:
            break
    out.flush()


def slow_consume(qid: int) -> None:
    """Print each sequence number as soon as it is taken, slowly (to be killed midway)."""
    mq = sysvmq.MessageQueue.from_id(qid)
    while True:
        _, seq = check(mq.receive())
        print(seq, flush=True)
        time.sleep(0.002)


def block(qid: int, what: str) -> None:
    """Block in one call and report how it ended."""
    mq = sysvmq.MessageQueue.from_id(qid)
    print("ready", flush=True)
    try:
        if what == "send":
            mq.send(b"x" * 4)
        else:
            mq.receive(12345)
        print("returned", flush=True)
    except sysvmq.SysVMQError as e:
        print(type(e).__name__, flush=True)


if __name__ == "__main__":
    role, *args = sys.argv[1:]
    if role == "produce":
        produce(*map(int, args))  # type: ignore[arg-type]
    elif role == "consume":
        consume(int(args[0]), int(args[1]), int(args[2]), float(args[3]))
    elif role == "slow_consume":
        slow_consume(int(args[0]))
    elif role == "block":
        block(int(args[0]), args[1])
