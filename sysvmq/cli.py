"""The ``sysvmq`` command: inspect, feed and drain System V message queues."""

import argparse
import json
import os
import pwd
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from sysvmq.errors import QueueEmptyError, QueueTimeoutError, SysVMQError
from sysvmq.queue import MessageQueue
from sysvmq.stats import QueueStats, limits, queues

EXAMPLES = {
    "ls": "sysvmq ls\n  sysvmq ls --json | jq '.[].key'",
    "stat": "sysvmq stat 0xdeadc0de\n  sysvmq stat --id 3 --json",
    "send": "sysvmq send 0xdeadc0de 'hello' --type 2 --create\n  seq 3 | sysvmq send 0xdeadc0de --lines",
    "receive": "sysvmq receive 0xdeadc0de --count 3 --show-type\n  sysvmq receive 0xdeadc0de --follow",
    "rm": "sysvmq rm 0xdeadc0de 0x1234\n  sysvmq rm --id 3 4",
    "limits": "sysvmq limits\n  sysvmq limits --json",
    "demo": "sysvmq demo",
    "bench": "sysvmq bench",
}


def parse_key(text: str) -> int:
    """A key as decimal or 0x-hex."""
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a key: {text!r} (use decimal or 0x-hex)") from None


def parse_mode(text: str) -> int:
    try:
        return int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an octal mode: {text!r}") from None


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
        print("  ".join(cell.rjust(width) if i > 0 else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths))).rstrip(), file=out)


def _open(args: argparse.Namespace, create: bool = False) -> MessageQueue:
    if args.id is not None:
        if args.key is not None:
            raise UsageError("name the queue by KEY or by --id ID, not both")
        return MessageQueue.from_id(args.id)
    if args.key is None:
        raise UsageError("name the queue by KEY or --id ID")
    mode = getattr(args, "mode", None)
    return MessageQueue(parse_key(args.key), create=create, mode=mode if create else None)


class UsageError(Exception):
    """Arguments that parse but do not go together: exit status 2."""


def cmd_ls(args: argparse.Namespace) -> int:
    found = queues()
    if args.json:
        json.dump([q.as_dict() for q in found], sys.stdout, indent=2)
        print()
        return 0
    now = time.time()
    rows = [["KEY", "ID", "OWNER", "MODE", "MESSAGES", "BYTES", "CAPACITY", "SEND PID", "RECV PID", "LAST SEND", "LAST RECEIVE"]]
    for q in found:
        rows.append([
            f"{q.key:#010x}", str(q.id), _owner(q.uid), f"{q.mode:04o}", str(q.count), str(q.bytes),
            str(q.max_bytes), str(q.last_send_pid or "-"), str(q.last_receive_pid or "-"),
            _ago(q.last_send_time, now), _ago(q.last_receive_time, now),
        ])
    _table(rows, sys.stdout)
    return 0


def cmd_stat(args: argparse.Namespace) -> int:
    stats = _open(args).stats()
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


def cmd_send(args: argparse.Namespace) -> int:
    if args.id is not None and args.key is not None and args.message is None:
        args.message, args.key = args.key, None  # `send --id 3 hello`: the one positional is the message
    mq = _open(args, create=args.create)
    options: Dict[str, Any] = {"type": args.type, "block": not args.nowait, "timeout": args.timeout}
    if args.message is not None:
        messages: Sequence[bytes] = [os.fsencode(args.message)]
    elif args.lines:
        messages = [line.rstrip(b"\n") for line in sys.stdin.buffer]
    else:
        messages = [sys.stdin.buffer.read()]
    for message in messages:
        mq.send(message, **options)
    if args.verbose:
        print(f"sent {len(messages)} message(s) to queue id {mq.id}", file=sys.stderr)
    return 0


def _write(message: bytes, mtype: int, args: argparse.Namespace) -> None:
    out = sys.stdout.buffer
    if args.show_type:
        out.write(f"{mtype}\t".encode())
    if args.raw:
        out.write(message)
    else:
        try:
            text = message.decode("utf-8")
        except UnicodeDecodeError:
            text = repr(message)[2:-1]  # escaped, so binary never garbles a terminal
        out.write(text.encode("utf-8") + b"\n")
    out.flush()


def cmd_receive(args: argparse.Namespace) -> int:
    mq = _open(args)
    count = None if args.follow else args.count
    received = 0
    while count is None or received < count:
        try:
            message = mq.receive_message(args.type, block=not args.nowait, timeout=args.timeout, truncate=args.truncate)
        except (QueueEmptyError, QueueTimeoutError):
            if args.follow:  # --follow with --nowait or --timeout: drain, then stop
                return 0
            raise
        _write(message.data, message.type, args)
        received += 1
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    targets = [(MessageQueue, key) for key in args.keys] + [(MessageQueue.from_id, msqid) for msqid in args.ids or []]
    if not targets:
        raise UsageError("name at least one KEY or --id ID")
    failed = 0
    for opener, name in targets:
        try:
            mq = opener(name)
            mq.destroy()
            print(f"removed queue key={mq.key:#010x} id={mq.id}")
        except SysVMQError as e:
            print(f"sysvmq: {e}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


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


def cmd_demo(args: argparse.Namespace) -> int:
    from sysvmq import demo

    return demo.run()


def cmd_bench(args: argparse.Namespace) -> int:
    from sysvmq import benchmark

    return benchmark.run(quick=not args.full)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sysvmq", description="Inspect, feed and drain System V message queues.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def command(name: str, help: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, epilog="example:\n  " + EXAMPLES[name], formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    def queue_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("key", nargs="?", help="the queue's key, decimal or 0x-hex")
        p.add_argument("--id", type=int, help="name the queue by msqid instead of key")

    p = command("ls", "list every queue this user may see", cmd_ls)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = command("stat", "show every IPC_STAT field of one queue", cmd_stat)
    queue_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = command("send", "send MESSAGE, or standard input, to a queue", cmd_send)
    queue_args(p)
    p.add_argument("message", nargs="?", help="the payload (default: standard input)")
    p.add_argument("--type", type=int, default=1, help="message type, >= 1 (default 1)")
    p.add_argument("--lines", action="store_true", help="send each line of standard input as one message")
    p.add_argument("--nowait", action="store_true", help="fail instead of waiting when the queue is full")
    p.add_argument("--timeout", type=float, help="seconds to wait for room")
    p.add_argument("--create", action="store_true", help="create the queue if it does not exist")
    p.add_argument("--mode", type=parse_mode, default=None, help="permissions of a created queue (default 0600)")
    p.add_argument("-v", "--verbose", action="store_true", help="report what was sent on stderr")

    p = command("receive", "receive messages and write their payloads to standard output", cmd_receive)
    queue_args(p)
    p.add_argument("--type", type=int, default=0, help="0: any; N > 0: type N; N < 0: lowest type <= |N|")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--count", type=int, default=1, help="how many messages (default 1)")
    group.add_argument("--follow", action="store_true", help="keep receiving until interrupted")
    p.add_argument("--nowait", action="store_true", help="fail instead of waiting when no message is there")
    p.add_argument("--timeout", type=float, help="seconds to wait for each message")
    p.add_argument("--show-type", action="store_true", help="prefix each payload with its type and a tab")
    p.add_argument("--raw", action="store_true", help="write payloads as they are, with no newline")
    p.add_argument("--truncate", action="store_true", help="cut messages longer than msgmax instead of failing")

    p = command("rm", "remove queues (IPC_RMID)", cmd_rm)
    p.add_argument("keys", nargs="*", type=parse_key, metavar="KEY", help="keys, decimal or 0x-hex")
    p.add_argument("--id", dest="ids", type=int, nargs="+", metavar="ID", help="msqids")

    p = command("limits", "show the kernel's queue limits and what is in use", cmd_limits)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    command("demo", "two processes trade typed messages on a private queue", cmd_demo)

    p = command("bench", "a quick benchmark against sysv_ipc, multiprocessing and C (under 15 s)", cmd_bench)
    p.add_argument("--full", action="store_true", help="the full suite, as bench/throughput.py runs it (minutes)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except (UsageError, argparse.ArgumentTypeError) as e:
        print(f"sysvmq {args.command}: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except (SysVMQError, ValueError, TypeError, OverflowError) as e:
        print(f"sysvmq {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
