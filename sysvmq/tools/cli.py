"""The ``sysvmq`` command: inspect, feed and drain System V message queues."""

import argparse
import json
import os
import pwd
import re
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from sysvmq.errors import QueueClosedError, QueueEmptyError, QueueTimeoutError, SysVMQError
from sysvmq.queue import Message, MessageQueue
from sysvmq.stats import limits, queues
from sysvmq.tools.output import Output, OutputClosed, StopSignals, escape, put_back

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


_DECIMAL = re.compile(r"-?[0-9]+\Z")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+\Z")
_OCTAL = re.compile(r"(0[oO])?[0-7]+\Z")


def _number(text: str, what: str, negative: bool = False) -> int:
    """Decimal or 0x-hex, ASCII digits only: no spaces, no underscores, no sign unless `negative`."""
    if _HEX.match(text):
        return int(text, 16)
    if _DECIMAL.match(text) and (negative or not text.startswith("-")):
        return int(text, 10)
    raise argparse.ArgumentTypeError(f"not {what}: {text!r} (use decimal or 0x-hex digits)")


def parse_key(text: str) -> int:
    """A key as decimal or 0x-hex."""
    return _number(text, "a key")


def parse_id(text: str) -> int:
    return _number(text, "a queue id")


def parse_type(text: str) -> int:
    return _number(text, "a message type", negative=True)


def parse_count(text: str) -> int:
    count = _number(text, "a count")
    if count < 1:
        raise argparse.ArgumentTypeError(f"the count must be at least 1, not {count}")
    return count


def parse_mode(text: str) -> int:
    if not _OCTAL.match(text):
        raise argparse.ArgumentTypeError(f"not an octal mode: {text!r}")
    return int(text[2:] if text[1:2] in "oO" and len(text) > 1 else text, 8)


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


def _open(args: argparse.Namespace, create: bool = False, exclusive: bool = False) -> MessageQueue:
    mode = getattr(args, "mode", None)
    if mode is not None and not create:
        raise UsageError("--mode sets the permissions of a queue --create makes: add --create")
    if exclusive and not create:
        raise UsageError("--exclusive needs --create")
    if args.id is not None:
        if args.key is not None:
            raise UsageError("name the queue by KEY or by --id ID, not both")
        if create:
            raise UsageError("--create makes a queue by KEY; an --id names one that exists")
        return MessageQueue.from_id(args.id)
    if args.key is None:
        raise UsageError("name the queue by KEY or --id ID")
    return MessageQueue(parse_key(args.key), create=create, exclusive=exclusive, mode=mode)


class UsageError(Exception):
    """Arguments that parse but do not go together: exit status 2."""


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
    mq = _open(args, create=args.create, exclusive=args.exclusive)
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


def _record(message: Message, args: argparse.Namespace) -> bytes:
    prefix = f"{message.type}\t".encode() if args.show_type else b""
    if args.raw:
        return prefix + message.data
    return prefix + escape(message.data).encode("utf-8") + b"\n"


def cmd_receive(args: argparse.Namespace) -> int:
    out = Output()
    mq = _open(args)
    spare = MessageQueue.from_id(mq.id)  # for putting back: `stop` closes mq, never this one
    count = None if args.follow else args.count
    received = 0
    with StopSignals(mq) as stop:
        while count is None or received < count:
            try:
                message = mq.receive_message(
                    args.type, block=not args.nowait, timeout=args.timeout, truncate=args.truncate
                )
            except QueueClosedError:
                if stop.signum:
                    return 128 + stop.signum
                raise
            except (QueueEmptyError, QueueTimeoutError):
                if args.follow:  # --follow with --nowait or --timeout: drain, then stop
                    return 0
                raise
            # The next message is taken only once this one is delivered or back in the queue.
            try:
                delivered = out.deliver(_record(message, args))
            except BaseException:
                put_back(spare, message)
                raise
            if not delivered:
                put_back(spare, message)
                return 0
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
    from sysvmq.tools import demo

    return demo.run()


def cmd_bench(args: argparse.Namespace) -> int:
    from sysvmq.tools import benchmark

    return benchmark.run(quick=not args.full)


def build_parser() -> Tuple[argparse.ArgumentParser, Dict[str, argparse.ArgumentParser]]:
    """The command's parser, and the parser of each subcommand by name."""
    parser = argparse.ArgumentParser(prog="sysvmq", description="Inspect, feed and drain System V message queues.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    commands: Dict[str, argparse.ArgumentParser] = {}

    def command(name: str, help: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help,
            description=help,
            epilog="example:\n  " + EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func, command=name)
        commands[name] = p
        return p

    def queue_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("key", nargs="?", help="the queue's key, decimal or 0x-hex")
        p.add_argument("--id", type=parse_id, help="name the queue by msqid instead of key")

    p = command("ls", "list every queue this user may see", cmd_ls)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = command("stat", "show every IPC_STAT field of one queue", cmd_stat)
    queue_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = command("send", "send MESSAGE, or standard input, to a queue", cmd_send)
    queue_args(p)
    p.add_argument("message", nargs="?", help="the payload (default: standard input)")
    p.add_argument("--type", type=parse_type, default=1, help="message type, >= 1 (default 1)")
    p.add_argument("--lines", action="store_true", help="send each line of standard input as one message")
    p.add_argument("--nowait", action="store_true", help="fail instead of waiting when the queue is full")
    p.add_argument("--timeout", type=float, help="seconds to wait for room")
    p.add_argument("--create", action="store_true", help="create the queue if it does not exist")
    p.add_argument("--exclusive", action="store_true", help="with --create: fail if the queue exists already")
    p.add_argument(
        "--mode",
        type=parse_mode,
        default=None,
        help="with --create: permissions of the queue (default 0600); an existing queue more open than this is refused",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="report what was sent on stderr")

    p = command("receive", "receive messages and write their payloads to standard output", cmd_receive)
    queue_args(p)
    p.add_argument("--type", type=parse_type, default=0, help="0: any; N > 0: type N; N < 0: lowest type <= |N|")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--count", type=parse_count, default=1, help="how many messages (default 1)")
    group.add_argument("--follow", action="store_true", help="keep receiving until interrupted")
    p.add_argument("--nowait", action="store_true", help="fail instead of waiting when no message is there")
    p.add_argument("--timeout", type=float, help="seconds to wait for each message")
    p.add_argument("--show-type", action="store_true", help="prefix each payload with its type and a tab")
    p.add_argument(
        "--raw",
        action="store_true",
        help="write payloads as they are, with no newline (default: one line each, control characters and non-UTF-8 bytes escaped)",
    )
    p.add_argument("--truncate", action="store_true", help="cut messages longer than msgmax instead of failing")

    p = command("rm", "remove queues (IPC_RMID)", cmd_rm)
    p.add_argument("keys", nargs="*", type=parse_key, metavar="KEY", help="keys, decimal or 0x-hex")
    p.add_argument("--id", dest="ids", type=parse_id, nargs="+", metavar="ID", help="msqids")

    p = command("limits", "show the kernel's queue limits and what is in use", cmd_limits)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    command("demo", "two processes trade typed messages on a private queue", cmd_demo)

    p = command("bench", "a quick benchmark against sysv_ipc, multiprocessing and C (under 15 s)", cmd_bench)
    p.add_argument(
        "--full", action="store_true", help="every section at full size (minutes); bench/throughput.py adds the C floor"
    )
    return parser, commands


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line; a subcommand's options may stand between its positionals
    (`sysvmq send KEY --type 2 MESSAGE`)."""
    parser, commands = build_parser()
    first = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), None)
    if first is None or argv[first] not in commands:
        return parser.parse_args(argv)  # help, or the usage error
    parser.parse_args(argv[: first + 1])  # the options before the subcommand
    return commands[argv[first]].parse_intermixed_args(argv[first + 1 :])


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse(sys.argv[1:] if argv is None else list(argv))
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except (UsageError, argparse.ArgumentTypeError) as e:
        print(f"sysvmq {args.command}: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0  # the reader stopped reading (`| head`): what it did not read is still queued
    except (SysVMQError, OutputClosed, OSError, ValueError, TypeError, OverflowError) as e:
        print(f"sysvmq {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
