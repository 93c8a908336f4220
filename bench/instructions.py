"""User-space instructions per send + receive pair, counted by valgrind's callgrind.

    python bench/instructions.py            # sysvmq (single and batch), the bare cffi floor, sysv_ipc

    python bench/instructions.py --repeat 3 # the median of three runs of each

Instruction counts do not depend on what else the machine is doing, so a change to the hot
path can be judged without noise: each contender runs N1 and N2 pairs of 64 B messages in a
fresh interpreter under callgrind (PYTHONHASHSEED=0), and the difference divided by N2 - N1
is its cost per pair, start-up excluded. The batch row runs ten times as many messages: a
batch costs a few hundred instructions per message, so a one-off cost in one run (a
collection of the older generations, say) would show as noise of some percent. Needs
valgrind; sysv_ipc is left out if absent.
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional

N1, N2 = 2_000, 22_000
#: How many times more messages a contender runs than N1 and N2 (the batch row: 10).
SCALE = {"sysvmq send_many() + receive_many(), per message (batches of 100)": 10}

PRELUDE = """
import sys
import sysvmq
mq = sysvmq.MessageQueue(sysvmq.IPC_PRIVATE)
n = int(sys.argv[1])
payload = b"x" * 64
"""

CONTENDERS: Dict[str, str] = {
    "sysvmq send() + receive()": PRELUDE
    + """
try:
    send, receive = mq.send, mq.receive
    for _ in range(n):
        send(payload)
        receive()
finally:
    mq.destroy()
""",
    "sysvmq send_many() + receive_many(), per message (batches of 100)": PRELUDE
    + """
try:
    batch = [payload] * 100
    send_many, receive_many = mq.send_many, mq.receive_many
    for _ in range(n // 100):
        send_many(batch)
        receive_many(100)
finally:
    mq.destroy()
""",
    "bare cffi: sysvmq_put + sysvmq_take + slice": PRELUDE
    + """
from sysvmq._sysvmq_cffi import ffi, lib
rb = ffi.new("sysvmq_rbuf *", {"mtext": mq.max_size})
rb.handle = mq._h
view = ffi.buffer(rb.mtext)
put, take, h = lib.sysvmq_put, lib.sysvmq_take, mq._h

def pair():
    put(h, 1, payload, 64)
    return view[: take(rb)]

try:
    for _ in range(n):
        pair()
finally:
    mq.destroy()
""",
    "sysv_ipc send() + receive()": """
import sys
import sysv_ipc
q = sysv_ipc.MessageQueue(None, sysv_ipc.IPC_CREX)
payload = b"x" * 64
try:
    send, receive = q.send, q.receive
    for _ in range(int(sys.argv[1])):
        send(payload)
        receive()
finally:
    q.remove()
""",
}


def instructions(code: str, n: int) -> Optional[int]:
    """Total instructions callgrind counts for `code` run with n pairs; None if it failed."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(code)
    try:
        env = dict(os.environ, PYTHONHASHSEED="0")
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, f.name, str(n)],
            capture_output=True,
            text=True,
            env=env,
        )
    finally:
        os.unlink(f.name)
    match = re.search(r"refs:\s+([\d,]+)", out.stderr)
    return int(match.group(1).replace(",", "")) if out.returncode == 0 and match else None


def per_pair(code: str, scale: int) -> Optional[float]:
    low, high = instructions(code, N1 * scale), instructions(code, N2 * scale)
    if low is None or high is None:
        return None
    return (high - low) / ((N2 - N1) * scale)


def main() -> int:
    if shutil.which("valgrind") is None:
        print("valgrind is needed (apt-get install valgrind)", file=sys.stderr)
        return 1
    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 1
    runs = f", the median of {repeat} runs" if repeat > 1 else ""
    print(f"{sys.implementation.name} {sys.version.split()[0]}; instructions per pair ({N2} - {N1} pairs{runs})")
    for name, code in CONTENDERS.items():
        counts: List[float] = []
        for _ in range(repeat):
            count = per_pair(code, SCALE.get(name, 1))
            if count is None:
                break
            counts.append(count)
        if not counts:
            print(f"  {name:<48} (not installed)")
            continue
        print(f"  {name:<48} {statistics.median(counts):>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
