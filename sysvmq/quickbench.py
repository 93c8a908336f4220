"""``sysvmq bench``: a quick look at this machine's speed (the full suite is bench/)."""

import time

from sysvmq.queue import MessageQueue


def run(seconds: float = 1.0) -> int:
    payload = b"x" * 64
    with MessageQueue(0, create=True) as mq:
        try:
            send, receive = mq.send, mq.receive
            count = 0
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                for _ in range(1000):
                    send(payload)
                    receive()
                count += 1000
            elapsed = time.perf_counter() - start
            print(f"one process, 64 B send+receive: {count / elapsed / 1e6:.3f} M pairs/s")
        finally:
            mq.destroy()
    return 0
