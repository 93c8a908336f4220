"""The commands that show what the kernel holds: ``ls``, ``stat`` and ``limits``."""

import argparse
import json
import pwd
import sys
import time
from typing import Any, List

from sysvmq.stats import limits, queues
from sysvmq.tools.parsing import open_queue

__all__ = ["cmd_ls", "cmd_stat", "cmd_limits"]


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _ago(when: int, now: float) -> str:
    if not when:
        return "-"
    seconds = max(0, int(now - when))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _table(rows: List[List[str]], out: Any) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(
                cell.rjust(width) if i > 0 else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths))
            ).rstrip(),
            file=out,
        )


def cmd_ls(args: argparse.Namespace) -> int:
    found = queues()
    if args.json:
        json.dump([q.as_dict() for q in found], sys.stdout, indent=2)
        print()
        return 0
    now = time.time()
    rows = [
        [
            "KEY",
            "ID",
            "OWNER",
            "MODE",
            "MESSAGES",
            "BYTES",
            "CAPACITY",
            "SEND PID",
            "RECV PID",
            "LAST SEND",
            "LAST RECEIVE",
        ]
    ]
    for q in found:
        rows.append(
            [
                f"{q.key:#010x}",
                str(q.id),
                _owner(q.uid),
                f"{q.mode:04o}",
                str(q.count),
                str(q.bytes),
                str(q.max_bytes),
                str(q.last_send_pid or "-"),
                str(q.last_receive_pid or "-"),
                _ago(q.last_send_time, now),
                _ago(q.last_receive_time, now),
            ]
        )
    _table(rows, sys.stdout)
    return 0


def cmd_stat(args: argparse.Namespace) -> int:
    stats = open_queue(args).stats()
    if args.json:
        json.dump(stats.as_dict(), sys.stdout, indent=2)
        print()
        return 0
    for name, value in stats.as_dict().items():
        if name == "key":
            shown = f"{value:#010x}"
        elif name == "mode":
            shown = f"{value:04o}"
        elif name.endswith("_time"):
            shown = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value)) if value else "-"
        elif name in ("uid", "cuid"):
            shown = f"{value} ({_owner(value)})"
        else:
            shown = str(value)
        print(f"{name:18} {shown}")
    return 0


def cmd_limits(args: argparse.Namespace) -> int:
    found = limits()
    if args.json:
        json.dump(found.as_dict(), sys.stdout, indent=2)
        print()
        return 0
    rows = [
        ["msgmax", str(found.msgmax), "largest message, bytes", "sysctl -w kernel.msgmax=N"],
        ["msgmnb", str(found.msgmnb), "default queue capacity, bytes", "sysctl -w kernel.msgmnb=N"],
        ["msgmni", str(found.msgmni), "most queues", "sysctl -w kernel.msgmni=N"],
        ["queues_in_use", str(found.queues_in_use), "queues now", ""],
        ["messages_in_use", str(found.messages_in_use), "messages waiting now", ""],
        ["bytes_in_use", str(found.bytes_in_use), "bytes waiting now", ""],
    ]
    _table(rows, sys.stdout)
    print("Make raised limits permanent in /etc/sysctl.conf (or /etc/sysctl.d/*.conf).")
    return 0
