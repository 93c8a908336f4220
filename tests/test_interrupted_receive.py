"""A Ctrl-C (or any exception a signal handler raises) in the instant after a receive took
its message, before the call returned it: the message goes back to the queue, never lost.

``_thread.interrupt_main()`` raises KeyboardInterrupt at the main thread's next check for
signals without interrupting its system call: set while the thread is blocked in msgrcv,
it fires the moment the call has taken the message, which is the window under test.
"""

import _thread
import os
import threading
import time

import pytest

import sysvmq

ROUNDS = 20


MSGRCV = {"x86_64": 70, "aarch64": 188}.get(os.uname().machine)


def in_msgrcv(tid: int) -> bool:
    with open(f"/proc/self/task/{tid}/syscall") as f:
        return f.read().split()[0] == str(MSGRCV)


def interrupt_then_send(mq: sysvmq.MessageQueue, tid: int, message: bytes) -> None:
    deadline = time.monotonic() + 5
    while not in_msgrcv(tid):
        assert time.monotonic() < deadline
        time.sleep(0.001)
    _thread.interrupt_main()
    mq.send(message, type=7)


RECEIVES = {
    "receive": lambda mq: mq.receive(),
    "receive type": lambda mq: mq.receive(7),
    "receive timeout": lambda mq: mq.receive(timeout=30),
    "receive_message": lambda mq: mq.receive_message(),
    "receive flags (checked path)": lambda mq: mq.receive(0, sysvmq.MSG_NOERROR),
    "receive_into": lambda mq: mq.receive_into(bytearray(100)),
    "receive_many": lambda mq: mq.receive_many(10),
}


@pytest.mark.skipif(MSGRCV is None, reason="reads the system call a thread is in from /proc")
@pytest.mark.parametrize("call", RECEIVES.values(), ids=RECEIVES.keys())
def test_an_interrupt_as_the_message_is_taken_puts_it_back(mq, call):
    tid = threading.get_native_id()
    interrupted = 0
    for i in range(ROUNDS):
        helper = threading.Thread(target=interrupt_then_send, args=(mq, tid, b"%03d" % i))
        helper.start()
        try:
            call(mq)
            outcome = "delivered"  # the interrupt came late: the message was handed over
        except KeyboardInterrupt:
            outcome = "interrupted"
        try:
            helper.join(10)
            time.sleep(0.01)  # a late interrupt lands here, outside the call
        except KeyboardInterrupt:
            helper.join(10)
        assert not helper.is_alive()
        if outcome == "interrupted":
            interrupted += 1
            assert mq.receive(block=False) == b"%03d" % i  # given back, whole
        assert mq.stats().count == 0
    assert interrupted > ROUNDS // 2
