"""The ``sysvmq`` command: inspect, feed and drain System V message queues."""

import argparse
import errno
import os
import signal
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from sysvmq import __version__
from sysvmq.errors import QueueClosedError, QueueEmptyError, QueueFullError, QueueTimeoutError, SysVMQError
from sysvmq.queue import Message, MessageQueue
from sysvmq.tools.cleanup import Stopped
from sysvmq.tools.listing import cmd_limits, cmd_ls, cmd_stat
from sysvmq.tools.output import Output, OutputClosed, StopSignals, escape, return_to_queue
from sysvmq.tools.parsing import (
    EXIT_STATUSES,
    FAILED,
    NOTHING,
    OK,
    PRIVATE_KEY,
    USAGE,
    UsageError,
    in_cli_terms,
    open_queue,
    parse_count,
    parse_id,
    parse_key,
    parse_mode,
    parse_seconds,
    parse_send_type,
    parse_timeout,
    parse_type,
)
from sysvmq.tools.signals import STOP_SIGNALS
from sysvmq.tools.streams import (
    InputClosed,
    discard_stdout,
    hold_closed_streams,
    input_fd,
    lines_of,
    read_all,
    stderr_that_cannot_fail,
    wait_on_stdout,
)

EXAMPLES = {
    "ls": "sysvmq ls\n  sysvmq ls --json | jq '.[].key'",
    "stat": "sysvmq stat 0xdeadc0de\n  sysvmq stat --id 3 --json",
    "send": "sysvmq send 0xdeadc0de 'hello' --type 2 --create\n  seq 3 | sysvmq send 0xdeadc0de --lines",
    "receive": "sysvmq receive 0xdeadc0de --count 3 --show-type\n  sysvmq receive 0xdeadc0de --follow",
    "rm": "sysvmq rm 0xdeadc0de 0x1234\n  sysvmq rm --id 3 4",
    "limits": "sysvmq limits\n  sysvmq limits --json",
    "demo": "sysvmq demo\n\nits queue is removed however it ends (Ctrl-C, SIGTERM, SIGHUP), but for SIGKILL:\n  then `sysvmq rm --id ID` removes it",
    "bench": "sysvmq bench\n\nits queues are removed however it ends (Ctrl-C, SIGTERM, SIGHUP), but for SIGKILL:\n  then `sysvmq ls` shows them and `sysvmq rm --id ID` removes them",
    "watch": "sysvmq watch\n  sysvmq watch 0xdeadc0de --id 3 --interval 0.5\n  sysvmq watch --count 1 | grep status=ok",
    "completion": "source <(sysvmq completion bash)\n  sysvmq completion fish > ~/.config/fish/completions/sysvmq.fish",
}


def cmd_send(args: argparse.Namespace) -> int:
    if args.id is not None and args.key is not None and args.message is None:
        args.message, args.key = args.key, None  # `send --id 3 hello`: the one positional is the message
    if args.lines and args.message is not None:
        raise UsageError("--lines sends the lines of standard input: give no MESSAGE with it")
    fd = None if args.message is not None else input_fd()  # before a queue is made for nothing
    mq = open_queue(args, create=args.create, exclusive=args.exclusive)
    options: Dict[str, Any] = {"type": args.type, "block": not args.nowait, "timeout": args.timeout}
    signum = 0
    if fd is None:
        mq.send(os.fsencode(args.message), **options)
        sent = 1
    elif args.lines:
        sent, signum = _send_lines(mq, fd, options)
    else:
        mq.send(read_all(fd, mq.max_size), **options)  # msgmax: open_queue sets no max_size
        sent = 1
    if args.verbose:
        print(f"sent {sent} message(s) to queue id {mq.id}", file=sys.stderr)
    return 128 + signum if signum else OK


def _send_lines(mq: MessageQueue, fd: int, options: Dict[str, Any]) -> Tuple[int, int]:
    """Send each line of `fd` as soon as it is read (`tail -f log | sysvmq send KEY --lines`).
    A stop signal ends the reading, not a send: every line read is sent, waiting for room
    as long as it takes; a second one ends that wait (the queue stays full: nobody receives),
    and standard error says how many lines read were not sent, as when --nowait or --timeout
    finds no room. How many were sent, and the signal that ended it (0 for the end of input)."""
    stop_read, stop_write = os.pipe()
    sender = MessageQueue.from_id(mq.id)  # closed by a second stop signal: a waiting send ends
    sent = 0
    try:
        with StopSignals(lambda: os.write(stop_write, b"\0"), sender.close) as stop:
            lines = lines_of(fd, stop_read, mq.max_size)
            for line in lines:
                try:
                    sender.send(line, **options)
                except (QueueClosedError, QueueFullError, QueueTimeoutError) as e:
                    os.write(stop_write, b"\0")  # no more is read: what was is counted
                    unsent = f"{sent} line(s) sent, {1 + sum(1 for _ in lines)} line(s) read were not sent"
                    if isinstance(e, QueueClosedError):  # only a second stop signal closes it
                        print(f"sysvmq send: stopped while waiting for room: {unsent}", file=sys.stderr)
                        break
                    raise type(e)(e.errno, f"{e.detail}; {unsent}") from None
                sent += 1
    finally:
        os.close(stop_read)
        os.close(stop_write)
    return sent, stop.signum


def _record(message: Message, args: argparse.Namespace) -> bytes:
    prefix = f"{message.type}\t".encode() if args.show_type else b""
    if args.raw:
        return prefix + message.data
    return prefix + escape(message.data).encode("utf-8") + b"\n"


#: A stop signal that comes in the instant before a receive enters the kernel is held until
#: the call returns: msgrcv has no atomic unblock, as ppoll has. So a blocking receive waits
#: in slices this long, and such a signal acts within one.
STOP_SLICE = 0.25


def _receive_slices(mq: MessageQueue, args: argparse.Namespace) -> Message:
    """One message as `args` asks, waiting in STOP_SLICE slices (the stop handler runs between)."""
    if args.nowait:
        return mq.receive_message(args.type, block=False, truncate=args.truncate)
    deadline = None if args.timeout is None else time.monotonic() + float(args.timeout)
    while True:
        left = STOP_SLICE if deadline is None else min(STOP_SLICE, deadline - time.monotonic())
        try:
            return mq.receive_message(args.type, timeout=max(left, 0.0), truncate=args.truncate)
        except QueueTimeoutError:
            if deadline is not None and time.monotonic() >= deadline:
                raise mq._receive_error(errno.ETIMEDOUT, args.timeout) from None


def cmd_receive(args: argparse.Namespace) -> int:
    out = Output()
    mq = open_queue(args)
    spare = MessageQueue.from_id(mq.id)  # for putting back: `stop` closes mq, never this one
    count = None if args.follow else args.count
    received = 0
    with StopSignals(mq.close) as stop:
        while count is None or received < count:
            try:
                message = _receive_slices(mq, args)
            except QueueClosedError:
                if stop.signum:
                    return 128 + stop.signum
                raise
            except (QueueEmptyError, QueueTimeoutError):
                if args.follow and received:  # --follow with --nowait or --timeout: drain, then stop
                    return OK
                raise
            # The next message is taken only once this one is delivered or back in the queue.
            try:
                delivered = out.deliver(_record(message, args))
            except BaseException:
                return_to_queue(spare, message)
                raise
            if not delivered:
                return_to_queue(spare, message)
                return 0
            received += 1
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    targets = [(MessageQueue, key) for key in args.keys] + [(MessageQueue.from_id, msqid) for msqid in args.ids or []]
    if not targets:
        raise UsageError("name at least one KEY or --id ID")
    if 0 in args.keys:  # msgget would make a new queue, to remove it at once
        raise UsageError(PRIVATE_KEY)
    failed = 0
    unwritten: Optional[OSError] = None
    for opener, name in targets:
        try:
            mq = opener(name)
            mq.destroy()
        except SysVMQError as e:
            print(f"sysvmq rm: {in_cli_terms(e, can_create=False)}", file=sys.stderr)
            failed += 1
            continue
        try:
            print(f"removed queue key={mq.key:#010x} id={mq.id}")
        except BrokenPipeError:
            discard_stdout()  # the reader left (`| head`): the report ends, the removals go on
        except OSError as e:  # a full disk, say: as above, and the exit status says so
            discard_stdout()
            unwritten = unwritten or e
    if unwritten is not None:
        print(f"sysvmq rm: standard output cannot be written ({unwritten}); the removals went on", file=sys.stderr)
    return FAILED if failed or unwritten else OK


def cmd_demo(args: argparse.Namespace) -> int:
    from sysvmq.tools import demo

    return demo.run()


def cmd_bench(args: argparse.Namespace) -> int:
    from sysvmq.tools import benchmark

    return benchmark.run(quick=not args.full)


def cmd_watch(args: argparse.Namespace) -> int:
    from sysvmq.tools import watch

    count = 1 if args.once else args.count
    return watch.run(watch.targets_from(args.keys, args.ids or []), args.interval, count, args.plain)


def cmd_completion(args: argparse.Namespace) -> int:
    from sysvmq.tools import completion

    if args.shell is None:
        raise UsageError("name the shell: bash, zsh or fish")
    sys.stdout.write(completion.script(args.shell, build_parser()[1]))
    sys.stdout.flush()
    return OK


class VersionAction(argparse.Action):
    """`--version`: `sysvmq X.Y.Z` on standard output, or one line on stderr if it is closed."""

    def __init__(self, option_strings: List[str], dest: str, help: Optional[str] = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        if sys.stdout is None:
            parser.exit(FAILED, "sysvmq: standard output cannot be written (it is closed)\n")
        print(f"sysvmq {__version__}")  # flushed by main(), where a reader that left is no error
        parser.exit(OK)


def build_parser() -> Tuple[argparse.ArgumentParser, Dict[str, argparse.ArgumentParser]]:
    """The command's parser, and the parser of each subcommand by name."""
    parser = argparse.ArgumentParser(
        prog="sysvmq",
        description="Inspect, feed and drain System V message queues.",
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=VersionAction, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    commands: Dict[str, argparse.ArgumentParser] = {}

    def command(name: str, help: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help,
            description=help,
            epilog="example:\n  " + EXAMPLES[name] + ("\n\n" + EXIT_STATUSES if name in ("send", "receive") else ""),
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
    p.add_argument("--type", type=parse_send_type, default=1, help="message type, >= 1 (default 1)")
    p.add_argument("--lines", action="store_true", help="send each line of standard input as one message")
    waiting = p.add_mutually_exclusive_group()
    waiting.add_argument("--nowait", action="store_true", help="fail instead of waiting when the queue is full")
    waiting.add_argument("--timeout", type=parse_timeout, help=f"seconds to wait for room (then exit status {NOTHING})")
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
    waiting = p.add_mutually_exclusive_group()
    waiting.add_argument("--nowait", action="store_true", help="fail instead of waiting when no message is there")
    waiting.add_argument(
        "--timeout", type=parse_timeout, help=f"seconds to wait for each message (then exit status {NOTHING})"
    )
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

    p = command(
        "bench",
        "a quick benchmark against multiprocessing.Queue, and sysv_ipc and ipcqueue if installed (under 15 s)",
        cmd_bench,
    )
    p.add_argument(
        "--full", action="store_true", help="every section at full size (minutes); bench/throughput.py adds the C floor"
    )

    p = command("watch", "a live view of queue depth, refreshed each interval (plain lines off a terminal)", cmd_watch)
    p.add_argument(
        "keys", nargs="*", type=parse_key, metavar="KEY", help="keys, decimal or 0x-hex (default: every queue)"
    )
    p.add_argument("--id", dest="ids", type=parse_id, nargs="+", metavar="ID", help="msqids")
    p.add_argument("--interval", type=parse_seconds, default=1.0, help="seconds between refreshes (default 1)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--count", type=parse_count, help="stop after N refreshes")
    group.add_argument("--once", action="store_true", help="one refresh, then stop (as --count 1)")
    p.add_argument("--plain", action="store_true", help="plain lines even on a terminal")

    p = command("completion", "print a completion script for bash, zsh or fish", cmd_completion)
    # Optional for argparse only: parse() runs the subcommand's parser once with no arguments.
    p.add_argument("shell", nargs="?", choices=("bash", "zsh", "fish"), help="bash, zsh or fish")
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


#: The commands whose output is on standard output: with it closed, they do nothing.
WRITES = frozenset({"ls", "stat", "receive", "rm", "limits", "demo", "bench", "watch", "completion"})


def main(argv: Optional[Sequence[str]] = None) -> int:
    hold_closed_streams()
    stderr_that_cannot_fail()
    wait_on_stdout()
    command, status = "sysvmq", None
    try:
        try:
            args = parse(sys.argv[1:] if argv is None else list(argv))
            command = f"sysvmq {args.command}"
            status = run(args)
        finally:
            # Here, not at the interpreter's exit, where a failure ends the process with status 120.
            if sys.stdout is not None:
                sys.stdout.flush()
    except BrokenPipeError:
        discard_stdout()
        return OK  # the reader stopped reading (`| head`): what it did not read is still queued
    except OSError as e:
        discard_stdout()
        if status != FAILED:  # one line: a command whose write failed has said so
            print(f"{command}: standard output cannot be written ({e})", file=sys.stderr)
        return FAILED
    return status


def run(args: argparse.Namespace) -> int:
    """The subcommand `args` names: its exit status, with its errors on one line."""
    try:
        if args.command in WRITES and sys.stdout is None:
            raise OutputClosed("standard output cannot be written (it is closed); nothing was done")
        # Every command that waits (send for room or for its input, as much as receive) ends
        # on a stop signal, even one the parent left blocked (here, where a Ctrl-C that was
        # pending is status 130); one it ignores stays ignored.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except Stopped as e:
        return 128 + e.signum
    except (UsageError, argparse.ArgumentTypeError) as e:
        print(f"sysvmq {args.command}: {e}", file=sys.stderr)
        return USAGE
    except BrokenPipeError:
        return OK  # the reader stopped reading (`| head`): what it did not read is still queued
    except (QueueEmptyError, QueueFullError, QueueTimeoutError) as e:
        print(f"sysvmq {args.command}: {in_cli_terms(e, hasattr(args, 'create'))}", file=sys.stderr)
        return NOTHING
    except SysVMQError as e:
        print(f"sysvmq {args.command}: {in_cli_terms(e, hasattr(args, 'create'))}", file=sys.stderr)
        return FAILED
    except (OutputClosed, InputClosed, OSError, ValueError, TypeError, OverflowError) as e:
        print(f"sysvmq {args.command}: {e}", file=sys.stderr)
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
