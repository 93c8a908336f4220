"""The sysvmq command, run as a real process."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from typing import Tuple

import pytest
from conftest import child_env, queue_ids, run_python, wait_until_waiting

import sysvmq


def cli(*args, input=None, check=False, timeout=30):
    result = subprocess.run(
        [sys.executable, "-m", "sysvmq", *args], input=input, capture_output=True, timeout=timeout, env=child_env()
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def one_line_error(result, code=1):
    assert result.returncode == code
    err = result.stderr.decode()
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_console_script_is_installed():
    script = os.path.join(os.path.dirname(sys.executable), "sysvmq")
    assert os.access(script, os.X_OK)
    assert subprocess.run([script, "--help"], capture_output=True, env=child_env(), timeout=30).returncode == 0


@pytest.mark.parametrize(
    "command", ["ls", "stat", "send", "receive", "rm", "limits", "demo", "bench", "watch", "completion"]
)
def test_every_subcommand_has_help_with_an_example(command):
    out = cli(command, "--help", check=True).stdout.decode()
    assert "example:" in out and f"sysvmq {command}" in out


def test_send_then_receive_by_key(make_queue, free_key):
    cli("send", hex(free_key), "hello there", "--type", "7", "--create", "--mode", "0640", check=True)
    mq = make_queue(free_key)
    assert mq.stats().mode == 0o640
    out = cli("receive", hex(free_key), "--show-type", check=True).stdout
    assert out == b"7\thello there\n"


def test_send_from_stdin_whole_and_by_lines(make_queue, free_key):
    mq = make_queue(free_key, create=True)
    cli("send", str(free_key), input=b"one\ntwo\n", check=True)
    cli("send", str(free_key), "--lines", "--type", "3", input=b"a\nb\nc\n", check=True)
    assert mq.receive_message() == sysvmq.Message(1, b"one\ntwo\n")
    assert [mq.receive_message(block=False) for _ in range(3)] == [sysvmq.Message(3, x) for x in (b"a", b"b", b"c")]


def test_receive_count_type_and_raw(mq):
    mq.send_many([b"x1", b"x2"], type=1)
    mq.send(b"\x00\xffbin", type=2)
    assert cli("receive", "--id", str(mq.id), "--type", "2", "--raw", check=True).stdout == b"\x00\xffbin"
    assert cli("receive", "--id", str(mq.id), "--count", "2", check=True).stdout == b"x1\nx2\n"


def test_binary_payloads_are_escaped_unless_raw(mq):
    mq.send(b"\x00\xff")
    assert cli("receive", "--id", str(mq.id), check=True).stdout == b"\\x00\\xff\n"


NOTHING = 3  # the exit status of "nothing to receive / timed out"


def test_receive_nowait_and_timeout_have_an_exit_status_of_their_own(mq):
    err = one_line_error(cli("receive", "--id", str(mq.id), "--nowait"), NOTHING)
    assert f"id={mq.id}" in err and "No message" in err
    start = time.monotonic()
    err = one_line_error(cli("receive", "--id", str(mq.id), "--timeout", "0.2"), NOTHING)
    assert "timed out" in err and time.monotonic() - start < 10


@pytest.mark.parametrize(
    "args, sent, out",
    [
        (["--count", "3", "--nowait"], [b"a"], b"a\n"),  # what was there is written, then status 3
        (["--count", "3", "--timeout", "0.1"], [b"a", b"b"], b"a\nb\n"),
        (["--follow", "--nowait"], [], b""),  # nothing at all to drain
        (["--follow", "--timeout", "0.1"], [], b""),
        (["--type", "5", "--nowait"], [b"other type"], b""),
    ],
)
def test_receiving_less_than_asked_is_the_nothing_status(mq, args, sent, out):
    if sent:
        mq.send_many(sent)
    result = cli("receive", "--id", str(mq.id), *args)
    assert (result.returncode, result.stdout) == (NOTHING, out)
    one_line_error(result, NOTHING)


def test_draining_something_with_follow_is_success(mq):
    mq.send(b"x")
    assert cli("receive", "--id", str(mq.id), "--follow", "--nowait").returncode == 0


@pytest.mark.parametrize("wait", [["--nowait"], ["--timeout", "0.1"]])
def test_no_room_to_send_is_the_nothing_status(mq, wait):
    mq.set(max_bytes=2)
    mq.send(b"12")
    err = one_line_error(cli("send", "--id", str(mq.id), "x", *wait), NOTHING)
    assert "full" in err or "timed out" in err
    assert mq.stats().count == 1


def test_errors_keep_status_1(free_key):
    one_line_error(cli("receive", hex(free_key), "--nowait"), 1)  # no such queue is an error, not "nothing"
    one_line_error(cli("receive", "--id", "2147483647", "--timeout", "0.1"), 1)


def test_the_exit_statuses_are_in_the_help():
    for args in ([], ["receive"], ["send"]):
        text = cli(*args, "--help", check=True).stdout.decode()
        assert "exit status:" in text and f"{NOTHING}    nothing to receive" in text


def test_version():
    result = cli("--version", check=True)
    assert result.stdout == f"sysvmq {sysvmq.__version__}\n".encode() and result.stderr == b""
    assert cli("--version", "ls").stdout == result.stdout  # it acts before any subcommand


def test_version_to_a_closed_stdout_is_one_line():
    out = subprocess.run(["bash", "-c", f"{script()} --version >&-"], capture_output=True, timeout=30, env=child_env())
    assert out.returncode == 1 and b"standard output" in out.stderr and out.stderr.count(b"\n") == 1


def test_follow_drains_and_ctrl_c_exits_130(mq):
    mq.send_many([b"1", b"2", b"3"])
    process = subprocess.Popen(
        [sys.executable, "-m", "sysvmq", "receive", "--id", str(mq.id), "--follow"],
        stdout=subprocess.PIPE,
        env=child_env(),
    )
    lines = [process.stdout.readline() for _ in range(3)]
    assert lines == [b"1\n", b"2\n", b"3\n"]
    wait_until_waiting(pid=process.pid)  # now waiting for more
    process.send_signal(signal.SIGINT)
    assert process.wait(10) == 130


def test_follow_with_timeout_stops_when_idle(mq):
    mq.send(b"only")
    result = cli("receive", "--id", str(mq.id), "--follow", "--timeout", "0.2", check=True)
    assert result.stdout == b"only\n"


def test_stat_matches_ipcs(mq):
    mq.send_many([b"12345", b"678"])
    data = json.loads(cli("stat", "--id", str(mq.id), "--json", check=True).stdout)
    assert set(data) == set(sysvmq.QueueStats.__dataclass_fields__)
    assert (data["count"], data["bytes"], data["id"]) == (2, 8, mq.id)
    ipcs = subprocess.run(
        ["ipcs", "-q", "-i", str(mq.id)], capture_output=True, text=True, check=True, env=child_env()
    ).stdout
    assert "cbytes=8" in ipcs.replace(" ", "") and "qnum=2" in ipcs.replace(" ", "")
    text = cli("stat", "--id", str(mq.id), check=True).stdout.decode()
    assert "count" in text and "max_bytes" in text and "0600" in text


def test_ls_lists_queues_of_other_clients(make_queue, free_key):
    made = subprocess.run(["ipcmk", "-Q"], capture_output=True, text=True, check=True, env=child_env()).stdout
    ipcmk_id = int(made.split(":")[-1])
    try:
        perl_key = free_key
        subprocess.run(
            [
                "perl",
                "-MIPC::Msg",
                "-MIPC::SysV=IPC_CREAT",
                "-e",
                'IPC::Msg->new($ARGV[0], IPC_CREAT | 0600)->snd(5, "from perl") or die "$!"',
                "--",
                str(perl_key - 2**32 if perl_key >= 2**31 else perl_key),
            ],
            check=True,
            env=child_env(),
        )
        perl_queue = make_queue(perl_key)
        listing = json.loads(cli("ls", "--json", check=True).stdout)
        by_id = {q["id"]: q for q in listing}
        assert ipcmk_id in by_id and perl_queue.id in by_id
        assert by_id[perl_queue.id]["key"] == perl_key and by_id[perl_queue.id]["count"] == 1
        assert set(listing[0]) == set(sysvmq.QueueStats.__dataclass_fields__)
        table = cli("ls", check=True).stdout.decode()
        assert table.splitlines()[0].split()[:3] == ["KEY", "ID", "OWNER"]
        assert f"{perl_key:#010x}" in table and "s ago" in table
    finally:
        subprocess.run(["ipcrm", "-q", str(ipcmk_id)], check=True, env=child_env())


def test_rm_by_key_and_id_reports_each(make_queue, free_key):
    a = make_queue(free_key, create=True)
    b = make_queue(sysvmq.IPC_PRIVATE)
    out = cli("rm", hex(free_key), "--id", str(b.id), check=True).stdout.decode()
    assert f"id={a.id}" in out and f"id={b.id}" in out
    assert not {a.id, b.id} & {q.id for q in sysvmq.queues()}
    err = one_line_error(cli("rm", hex(free_key)))
    assert f"{free_key:#010x}" in err


def rm_300_queues_into(output: int) -> Tuple["subprocess.CompletedProcess[bytes]", int]:
    """`sysvmq rm` of 300 queues (a report of 10 KiB, more than stdout's buffer) with its
    standard output on the descriptor `output`: how it ended, and how many queues it left."""
    named = [sysvmq.MessageQueue(sysvmq.IPC_PRIVATE, create=True) for _ in range(300)]
    ids = {mq.id for mq in named}
    try:
        result = subprocess.run(
            [script(), "rm", "--id", *map(str, ids)], stdout=output, stderr=subprocess.PIPE, timeout=60, env=child_env()
        )
        return result, len(ids & queue_ids())
    finally:
        for msqid in ids & queue_ids():
            sysvmq.MessageQueue.from_id(msqid).destroy()


def test_rm_removes_every_queue_named_when_the_reader_of_its_report_left():
    read, write = os.pipe()
    os.close(read)  # `sysvmq rm ... | head -1`, the head gone before the first line
    try:
        result, left = rm_300_queues_into(write)
    finally:
        os.close(write)
    assert (result.returncode, result.stderr, left) == (0, b"", 0)


def test_rm_removes_every_queue_named_when_its_report_cannot_be_written():
    with open("/dev/full", "wb") as full:  # a full disk
        result, left = rm_300_queues_into(full.fileno())
    assert (result.returncode, left) == (1, 0)
    err = result.stderr.decode()
    # Where stdout's buffer holds the whole report (CPython 3.14 and later: 128 KiB), the write
    # fails only at the final flush, after the loop: one line either way.
    assert err.count("\n") == 1 and "standard output cannot be written" in err, err


def test_limits_table_and_json(limits):
    data = json.loads(cli("limits", "--json", check=True).stdout)
    assert set(data) == set(sysvmq.Limits.__dataclass_fields__)
    assert data["msgmax"] == limits.msgmax
    text = cli("limits", check=True).stdout.decode()
    assert "kernel.msgmnb" in text and "/etc/sysctl.conf" in text


def test_demo_runs_and_leaves_no_queue():
    result = cli("demo", check=True, timeout=60)
    out = result.stdout.decode()
    assert "producer" in out and "consumer" in out and "removed" in out
    assert out.index("(urgent)", out.index("consumer")) < out.index("(normal)", out.index("consumer"))


def test_demo_succeeds_where_the_parent_ignores_sigchld():
    # A parent that never waits for its children may set SIGCHLD to SIG_IGN; exec keeps it.
    result = subprocess.run(
        [script(), "demo"],
        capture_output=True,
        timeout=60,
        env=child_env(),
        preexec_fn=lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN),
    )
    assert (result.returncode, result.stderr) == (0, b"") and b"handled 5 orders" in result.stdout


@pytest.mark.parametrize(
    "args, code",
    [
        (["send", "nonsense", "x"], 2),
        (["receive", "0x1", "--count", "x"], 2),
        (["frobnicate"], 2),
        (["stat"], 2),
        (["stat", "0x1", "--id", "3"], 2),
        (["rm"], 2),
        (["receive", "0x1", "--count", "-5"], 2),
        (["receive", "0x1", "--count", "0"], 2),
        (["receive", " 12"], 2),
        (["receive", "1_000"], 2),
        (["receive", "\u0661\u0662"], 2),  # Arabic-Indic digits
        (["stat", "--id", "1_0"], 2),
        (["stat", "--id", "2147483648"], 2),  # above INT_MAX: refused while parsing
        (["stat", "0x100000000"], 2),  # above the key_t range
        (["completion"], 2),
        (["completion", "tcsh"], 2),
        (["send", "0x1", "x", "--mode", "0600"], 2),  # --mode without --create
        (["send", "0x1", "x", "--exclusive"], 2),  # --exclusive without --create
        (["receive", "0x1", "--timeout", "-1"], 2),
        (["receive", "0x1", "--timeout", "nan"], 2),
        (["send", "0x1", "x", "--timeout", "inf"], 2),
        (["receive", "0x1", "--timeout", "9" * 400], 2),  # digits past a double's range: inf
        (["receive", "0x1", "--nowait", "--timeout", "1"], 2),
        (["send", "0x1", "x", "--nowait", "--timeout", "1"], 2),
        (["receive", "0x1", "--type", "99999999999999999999"], 2),  # beyond a C long
        (["send", "0x1", "x", "--type", "0"], 2),
        (["send", "0x1", "x", "--type", "-3"], 2),
        (["send", "0x1", "x", "--lines"], 2),  # --lines reads standard input, not a MESSAGE
        (["send", "--id", "1", "x", "--lines"], 2),
    ],
)
def test_usage_errors(args, code):
    result = cli(*args)
    assert result.returncode == code
    assert "Traceback" not in result.stderr.decode()
    if "--mode" in args or "--exclusive" in args:
        assert "--create" in result.stderr.decode()


@pytest.mark.parametrize("args", [["stat", "0"], ["send", "0", "x"], ["receive", "0x0", "--nowait"], ["rm", "0"]])
def test_key_0_names_no_queue_and_makes_none(args):
    before = queue_ids()
    err = one_line_error(cli(*args), 2)
    assert "IPC_PRIVATE" in err and "--id" in err
    assert queue_ids() == before  # msgget(IPC_PRIVATE) would have made one


@pytest.mark.parametrize("args", [["stat"], ["receive", "--nowait"], ["rm"], ["send", "x"]])
def test_missing_queue_is_one_line_naming_it_in_the_commands_terms(free_key, args):
    err = one_line_error(cli(args[0], hex(free_key), *args[1:]))
    assert f"{free_key:#010x}" in err
    assert "=True" not in err  # the library's arguments, not options of the command
    assert ("pass --create" in err) if args[0] == "send" else ("sysvmq ls" in err and "create" not in err)


def test_errors_after_the_open_advise_the_commands_options_too(mq):
    err = one_line_error(cli("receive", "--id", str(mq.id), "--nowait"), 3)
    assert "(--nowait)" in err and "block=False" not in err


@pytest.mark.parametrize(
    "args, status", [(["stat", "0x99"], 1), (["bogus"], 2), (["ls"], 0), (["receive", "--id", "0", "--nowait"], 1)]
)
def test_a_standard_error_that_cannot_be_written_leaves_the_exit_status_as_it_is(args, status):
    # `2>/dev/full`: what the command says is lost, and its exit status alone tells the error;
    # before, the failed report ended it with a traceback or the interpreter's status 120.
    with open("/dev/full", "w") as full:
        result = subprocess.run([script(), *args], stdout=subprocess.DEVNULL, stderr=full, timeout=30, env=child_env())
    assert result.returncode == status


def script():
    return os.path.join(os.path.dirname(sys.executable), "sysvmq")


def shell(command, timeout=30):
    """Run `command` under bash; its stdout, and the exit status of its first pipeline stage."""
    out = subprocess.run(
        ["bash", "-c", command + '; echo "status=${PIPESTATUS[0]}"'],
        capture_output=True,
        timeout=timeout,
        env=child_env(),
    )
    text = out.stdout.decode()
    body, _, status = text.rpartition("status=")
    return body, int(status), out.stderr.decode()


def payloads(mq):
    return [mq.peek(i).data for i in range(mq.stats().count)]


def test_a_reader_that_stops_takes_exactly_what_it_read(mq):
    mq.send_many([b"m%d" % i for i in range(20)])
    body, status, err = shell(f"{script()} receive --id {mq.id} --follow --nowait | head -2")
    assert body == "m0\nm1\n" and status == 0 and "Traceback" not in err
    left = payloads(mq)
    assert sorted(left) == sorted(b"m%d" % i for i in range(2, 20))  # m2 was written, never read: put back


def test_a_message_that_cannot_be_written_is_put_back_at_the_end(mq):
    mq.send_many([b"first", b"second"])
    _, status, err = shell(f"{script()} receive --id {mq.id} > /dev/full")
    assert status == 1 and err.count("\n") == 1 and "No space left" in err
    assert payloads(mq) == [b"second", b"first"]


def test_closed_stdout_is_one_line_before_anything_is_taken(mq):
    mq.send(b"kept")
    _, status, err = shell(f"{script()} receive --id {mq.id} >&-")
    assert status == 1 and err.count("\n") == 1 and "standard output" in err
    assert payloads(mq) == [b"kept"]


@pytest.mark.parametrize(
    "command",
    [
        "ls",
        "ls --json",
        "stat --id {id}",
        "stat --id {id} --json",
        "limits",
        "limits --json",
        "rm --id {id}",
        "completion bash",
        "watch --once",
        "receive --id {id}",
    ],
)
def test_every_command_that_writes_refuses_a_closed_stdout_before_it_acts(mq, command):
    mq.send(b"kept")
    _, status, err = shell(f"{script()} {command.format(id=mq.id)} >&-")
    assert status == 1 and err.count("\n") == 1 and "standard output cannot be written" in err, err
    assert payloads(mq) == [b"kept"]  # rm removed nothing, receive took nothing


@pytest.mark.parametrize("command", ["--version", "ls", "limits", "completion bash"])
def test_a_reader_that_leaves_at_once_is_no_error(mq, command):
    _, status, err = shell(f"{script()} {command} | (exec 0<&-; sleep 0.2)")
    assert status == 0 and err == ""


def test_a_pipe_closed_at_once_loses_nothing(mq):
    mq.send_many([b"a", b"b", b"c"])
    _, status, err = shell(f"{script()} receive --id {mq.id} --count 3 | true")
    assert status == 0 and err == ""
    assert sorted(payloads(mq)) == [b"a", b"b", b"c"]


def test_control_characters_cannot_reach_the_terminal_or_forge_records(mq):
    mq.send(b"evil\x1b]0;title\x07\x1b[2J\n2\tforged\\x41\x9b\xc2\x9b", type=1)
    mq.send("caf\u00e9 \u2603".encode(), type=1)
    out = cli("receive", "--id", str(mq.id), "--count", "2", "--show-type", check=True).stdout
    assert out == b"1\tevil\\x1b]0;title\\x07\\x1b[2J\\n2\\tforged\\\\x41\\x9b\\u009b\n1\tcaf\xc3\xa9 \xe2\x98\x83\n"
    assert len(out.splitlines()) == 2


def test_options_may_stand_between_positionals(make_queue, free_key):
    cli("send", hex(free_key), "--create", "one", check=True)
    cli("send", hex(free_key), "--type", "2", "two", check=True)
    mq = make_queue(free_key)
    assert [mq.receive_message(block=False) for _ in range(2)] == [sysvmq.Message(1, b"one"), sysvmq.Message(2, b"two")]


def test_mode_zero_and_exclusive(make_queue, free_key):
    cli("send", hex(free_key), "x", "--create", "--exclusive", "--mode", "0", check=True)
    mq = make_queue(free_key)
    assert mq.stats().mode == 0
    err = one_line_error(cli("send", hex(free_key), "y", "--create", "--exclusive"))
    assert "exists" in err.lower() and "drop --exclusive" in err and "=True" not in err
    assert mq.stats().count == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="another user's queue needs root")
def test_send_create_refuses_a_queue_another_user_made_first(free_key):
    from test_permissions import as_nobody

    kind, msqid = as_nobody(lambda: sysvmq.MessageQueue(free_key, create=True, mode=0o666).id)
    assert kind == "ok"
    try:
        err = one_line_error(cli("send", hex(free_key), "secret", "--create", "--mode", "600"))
        assert "65534" in err and "pass --exclusive" in err and "leave out --mode" in err and "=True" not in err
        assert sysvmq.MessageQueue.from_id(msqid).stats().count == 0
    finally:
        sysvmq.MessageQueue.from_id(msqid).destroy()


def test_a_message_that_cannot_be_put_back_is_reported(mq):
    from sysvmq.tools.output import return_to_queue

    gone = sysvmq.MessageQueue(sysvmq.IPC_PRIVATE)
    gone.destroy()
    with pytest.raises(sysvmq.QueueRemovedError, match=r"type 3 \(2 bytes\) could not be written, nor put back"):
        return_to_queue(gone, sysvmq.Message(3, b"xy"))


def stdout_to_a_pipe(monkeypatch):
    """sys.stdout writing to a new pipe: its (read, write) ends."""
    read, write = os.pipe()

    class Stdout:
        def flush(self):
            pass

        def fileno(self):
            return write

    monkeypatch.setattr(sys, "stdout", Stdout())
    return read, write


def test_a_pipe_whose_reader_leaves_without_reading_is_not_a_delivery(monkeypatch):
    from sysvmq.tools.output import Output

    read, write = stdout_to_a_pipe(monkeypatch)
    try:
        out = Output()
        assert out.pipe
        os.close(read)
        with pytest.raises(BrokenPipeError):
            out.deliver(b"nobody reads this\n")
    finally:
        os.close(write)


def test_a_record_read_by_the_reader_is_delivered_and_one_left_unread_is_not(monkeypatch):
    from sysvmq.tools.output import Output

    read, write = stdout_to_a_pipe(monkeypatch)
    reader = threading.Timer(0.05, lambda: os.read(read, 100))
    reader.start()
    try:
        out = Output()
        assert out.deliver(b"read\n")  # returns once the reader has read it
        threading.Timer(0.05, os.close, (read,)).start()
        assert not out.deliver(b"left in the pipe\n")  # the reader closed with it unread
    finally:
        reader.join()
        os.close(write)


def a_full_non_blocking_pipe():
    """A pipe of one page, its write end non-blocking (O_NONBLOCK, as some parents leave a
    descriptor they share): its (read, write) ends."""
    import fcntl

    read, write = os.pipe()
    fcntl.fcntl(write, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
    os.set_blocking(write, False)
    return read, write


def read_once_full(read, process, within=30):
    """Everything `process` writes to the pipe `read`, read only once the pipe is full (or
    the process has ended): a writer that cannot wait for room has met a full pipe."""
    import fcntl
    import termios

    unread = bytearray(4)
    deadline = time.monotonic() + within
    while process.poll() is None:
        fcntl.ioctl(read, termios.FIONREAD, unread)
        if int.from_bytes(unread, sys.byteorder) >= 4096:
            break
        assert time.monotonic() < deadline, "the pipe never filled"
        time.sleep(0.005)  # polling the pipe itself: the state, not a guess at a delay
    chunks = []
    while True:
        chunk = os.read(read, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


@pytest.mark.parametrize("command", ["receive", "watch", "ls"])
def test_a_non_blocking_stdout_that_fills_is_waited_for_not_an_error(mq, command):
    mq.send(b"a" * 8000)  # a record twice the pipe's size
    # A refresh of 61 lines, more than the pipe holds: written at once, it fills the pipe to the brim.
    absent = [str(2**31 - 1 - i) for i in range(60)]
    argv = {
        "receive": ["receive", "--id", str(mq.id)],
        "watch": ["watch", "--id", str(mq.id), *absent, "--count", "2", "--interval", "0.001"],
        "ls": ["ls", "--json"],  # 20 queues, 300 bytes each: printed, not written to the descriptor
    }[command]
    others = [sysvmq.MessageQueue(sysvmq.IPC_PRIVATE, create=True) for _ in range(20 if command == "ls" else 0)]
    read, write = a_full_non_blocking_pipe()
    try:
        process = subprocess.Popen([script(), *argv], stdout=write, stderr=subprocess.PIPE, env=child_env())
        os.close(write)
        write = None
        out = read_once_full(read, process)
        assert (process.wait(30), process.stderr.read()) == (0, b"")
    finally:
        os.close(read)
        if write is not None:
            os.close(write)
        for other in others:
            other.destroy()
    if command == "watch":
        lines = out.decode().splitlines()
        assert len(lines) == 2 * 61 and [line.rsplit(" ", 1)[1] for line in lines[:2]] == ["status=ok", "status=absent"]
    elif command == "ls":
        assert len(json.loads(out)) == 21
    else:
        assert out == b"a" * 8000 + b"\n" and mq.stats().count == 0  # whole, once


def test_new_line_separators_and_bidi_controls_are_escaped(mq):
    mq.send("a\u2028b\u2029c\u202ed\u2066e".encode())
    out = cli("receive", "--id", str(mq.id), check=True).stdout
    assert out == b"a\\u2028b\\u2029c\\u202ed\\u2066e\n"
    assert len(out.decode().splitlines()) == 1


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_mid_stream_neither_loses_nor_doubles(mq, tmp_path, signum):
    sent = 3000
    out_path = tmp_path / "out"
    with open(out_path, "wb") as out:
        receiver = subprocess.Popen([script(), "receive", "--id", str(mq.id), "--follow"], stdout=out, env=child_env())
        try:
            for i in range(sent):
                mq.send(b"%d" % i)
                if i == sent // 2:
                    deadline = time.monotonic() + 20
                    while not out_path.stat().st_size and time.monotonic() < deadline:
                        time.sleep(0.01)  # the receiver runs (its handlers are in place) once it wrote
                    receiver.send_signal(signum)  # in the middle of the stream
            status = receiver.wait(10)
        finally:
            if receiver.poll() is None:
                receiver.kill()
                receiver.wait()
    assert status == 128 + signum
    written = [int(line) for line in out_path.read_bytes().split()]
    left = [int(m) for m in mq.receive_many(sent, block=False)] if mq.stats().count else []
    assert sorted(written + left) == list(range(sent))  # each exactly once


def test_stop_signals_the_parent_left_blocked_still_stop_a_follow(mq):
    blocked = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    receiver = subprocess.Popen(
        [script(), "receive", "--id", str(mq.id), "--follow"],
        stdout=subprocess.PIPE,
        preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, blocked),
        env=child_env(),
    )
    try:
        mq.send(b"first")
        assert receiver.stdout.readline() == b"first\n"  # its handlers are in place
        receiver.send_signal(signal.SIGTERM)
        assert receiver.wait(10) == 128 + signal.SIGTERM
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_stop_signals_the_parent_left_blocked_still_stop_a_send_waiting_for_room(mq, signum):
    mq.set(max_bytes=2)
    mq.send(b"12")
    stops = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]

    def blocked():
        for stop in stops:
            signal.signal(stop, signal.SIG_DFL)  # as a foreground job has them, whatever this run inherited
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)

    sender = subprocess.Popen(
        [script(), "send", "--id", str(mq.id), "x"], stderr=subprocess.PIPE, preexec_fn=blocked, env=child_env()
    )
    try:
        deadline = time.monotonic() + 30
        while "msgsnd" not in pathlib.Path(f"/proc/{sender.pid}/wchan").read_text():
            assert sender.poll() is None and time.monotonic() < deadline, "it never waited for room"
            time.sleep(0.005)  # polling the sender's wait: the state itself
        sender.send_signal(signum)
        assert sender.wait(10) in (128 + signum, -signum)  # its status, or killed by it (shells say 128 + N)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    assert payloads(mq) == [b"12"]


@pytest.mark.parametrize("command", ["receive", "send"])
def test_a_ctrl_c_pending_while_blocked_is_status_130_before_anything_is_done(mq, command):
    mq.send(b"kept")

    def pending():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
        os.kill(os.getpid(), signal.SIGINT)  # stays pending across exec

    result = subprocess.run(
        [script(), command, "--id", str(mq.id), *(["x"] if command == "send" else [])],
        capture_output=True,
        preexec_fn=pending,
        timeout=30,
        env=child_env(),
    )
    assert (result.returncode, result.stdout, result.stderr) == (130, b"", b"")
    assert payloads(mq) == [b"kept"]


def nohup():
    """What `nohup` does to the command it starts: SIGHUP ignored."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def test_a_hangup_the_parent_ignored_leaves_a_follow_running(mq):
    receiver = subprocess.Popen(
        [script(), "receive", "--id", str(mq.id), "--follow"], stdout=subprocess.PIPE, preexec_fn=nohup, env=child_env()
    )
    try:
        mq.send(b"first")
        assert receiver.stdout.readline() == b"first\n"  # its handlers are in place
        receiver.send_signal(signal.SIGHUP)  # the terminal closed: `nohup` says keep going
        mq.send(b"second")
        assert receiver.stdout.readline() == b"second\n"
        receiver.send_signal(signal.SIGTERM)  # a hangup it heeded would have ended it first: 129
        assert receiver.wait(10) == 128 + signal.SIGTERM
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()


def test_a_hangup_the_parent_ignored_leaves_send_lines_reading(mq):
    sender = subprocess.Popen(
        [script(), "send", "--id", str(mq.id), "--lines"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=nohup,
        env=child_env(),
    )
    try:
        sender.stdin.write(b"first\n")
        sender.stdin.flush()
        assert mq.receive(timeout=20) == b"first"  # its handlers are in place
        sender.send_signal(signal.SIGHUP)
        sender.stdin.write(b"second\n")
        sender.stdin.close()
        assert mq.receive(timeout=20) == b"second"
        assert sender.wait(20) == 0 and sender.stderr.read() == b""  # ended by its input, not the hangup
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()


def shell_status(command, **kwargs):
    """`command` under bash in a user's environment: (exit status, stdout, stderr)."""
    out = subprocess.run(["bash", "-c", command], capture_output=True, timeout=60, env=child_env(), **kwargs)
    return out.returncode, out.stdout, out.stderr.decode()


@pytest.mark.parametrize("command", ["--version", "--help", "ls", "ls --json", "limits", "completion zsh"])
def test_output_left_in_the_buffer_is_flushed_before_exit_or_reported(command):
    # Without PYTHONUNBUFFERED, what a command prints waits in sys.stdout's buffer: a failed
    # last flush at the interpreter's exit would print a warning and end with status 120.
    status, _, err = shell_status(f"{script()} {command} | true")
    assert (status, err) == (0, "")  # bash: the status of the last stage; the first is below
    status, _, err = shell_status(f'{script()} {command} | true; exit "${{PIPESTATUS[0]}}"')
    assert (status, err) == (0, "")
    status, _, err = shell_status(f"{script()} {command} > /dev/full")
    assert status == 1 and err.count("\n") == 1 and "No space left" in err and "Traceback" not in err, err
    assert err.startswith(f"sysvmq{' ' + command.split()[0] if not command.startswith('-') else ''}: ")


def test_with_stderr_closed_diagnostics_never_reach_stdout(free_key):
    for command, expected in [
        (f"stat {hex(free_key)}", 1),  # no such queue
        ("receive 0x1 --count x", 2),  # a usage error, reported by argparse
        ("frobnicate", 2),
        (f"send {hex(free_key)} x", 1),
    ]:
        status, out, err = shell_status(f"exec 2>&-; {script()} {command}")
        assert (status, out, err) == (expected, b"", ""), command


def test_with_stderr_closed_the_verbose_report_goes_nowhere(make_queue, free_key):
    mq = make_queue(free_key, create=True)
    status, out, _ = shell_status(f"exec 2>&-; printf 'a\\nb\\n' | {script()} send {hex(free_key)} --lines -v")
    assert (status, out) == (0, b"")
    assert [mq.receive(block=False) for _ in range(2)] == [b"a", b"b"]


def opened_as(pid, fd):
    """What descriptor `fd` of process `pid` is open on, and whether it was opened for writing."""
    target = os.readlink(f"/proc/{pid}/fd/{fd}")
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        flags = int(next(line for line in f if line.startswith("flags:")).split()[1], 8)
    return target, bool(flags & (os.O_WRONLY | os.O_RDWR))


def test_a_closed_stderr_is_held_on_dev_null_so_no_file_opened_takes_its_place(mq):
    # Opened later, a file (a pipe, a queue's /proc entry) would get descriptor 2, and what
    # is written to standard error would land in it.
    receiver = subprocess.Popen(
        ["bash", "-c", f"exec 2>&-; exec {script()} receive --id {mq.id} --follow"],
        stdout=subprocess.PIPE,
        env=child_env(),
    )
    try:
        mq.send(b"ready")
        assert receiver.stdout.readline() == b"ready\n"
        target, writable = opened_as(receiver.pid, 2)
        if target != os.devnull:
            # Only one file may be there instead: a libffi with static trampolines (the system's,
            # under Debian's PyPy 8.0) opens its own library, read-only and for the life of the
            # process, when the interpreter makes its first FFI object, before any code of the
            # command runs. It is mapped, never written: what goes to standard error fails.
            with open(f"/proc/{receiver.pid}/maps") as f:
                mapped = f.read()
            assert "/libffi.so" in target and target in mapped and not writable, target
    finally:
        receiver.send_signal(signal.SIGTERM)
        assert receiver.wait(10) == 128 + signal.SIGTERM


@pytest.mark.parametrize("lines", [[], ["--lines"]])
def test_send_with_stdin_closed_is_one_line(make_queue, free_key, lines):
    status, _, err = shell_status(f"{script()} send {hex(free_key)} --create {' '.join(lines)} <&-")
    assert status == 1 and err.count("\n") == 1 and "standard input is closed" in err and "Traceback" not in err
    assert free_key not in {q.key for q in sysvmq.queues()}  # nothing made for nothing


def test_rm_errors_name_the_command(free_key):
    err = one_line_error(cli("rm", hex(free_key)))
    assert err.startswith("sysvmq rm: ")


def test_invisible_format_characters_are_escaped(mq):
    # Zero-width space, word joiner, an unassigned invisible operator, BOM, soft hyphen,
    # and tags (which spell hidden text): all of Unicode category Cf, and its blocks.
    mq.send("a\u200bb\u2060c\u2065d\ufeffe\u00adf\U000e0041\U000e007fg".encode())
    out = cli("receive", "--id", str(mq.id), check=True).stdout
    assert out == b"a\\u200bb\\u2060c\\u2065d\\ufeffe\\u00adf\\U000e0041\\U000e007fg\n"
    mq.send("caf\u00e9 \u2603 \u0661 \U0001f600".encode())  # printable text as it is
    assert cli("receive", "--id", str(mq.id), check=True).stdout == "caf\u00e9 \u2603 \u0661 \U0001f600\n".encode()


@pytest.mark.parametrize(
    "code",
    [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180F, 0x3164, 0xFE00, 0xFE0F, 0xFFA0, 0xFFF0, 0xE0080, 0xE0100],
)
def test_default_ignorable_characters_that_are_not_format_characters_are_escaped(mq, code):
    # Grapheme joiner, Hangul fillers, Khmer inherent vowels, Mongolian and other variation
    # selectors, reserved ones: drawn as nothing (or a blank) by terminals, as Cf is.
    mq.send(f"a{chr(code)}b".encode())
    shown = f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    assert cli("receive", "--id", str(mq.id), check=True).stdout == f"a{shown}b\n".encode()


def send_lines(mq):
    """`sysvmq send --lines` to `mq`, fed through a pipe this test writes to."""
    return subprocess.Popen(
        [script(), "send", "--id", str(mq.id), "--lines"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )


def test_send_lines_sends_each_line_while_the_input_is_still_open(mq):
    sender = send_lines(mq)
    try:
        sender.stdin.write(b"first\n")
        sender.stdin.flush()
        assert mq.receive(timeout=20) == b"first"  # `tail -f log | sysvmq send KEY --lines`
        assert sender.poll() is None
        sender.stdin.write(b"second\nlast, without a newline")
        sender.stdin.close()
        assert sender.wait(20) == 0 and sender.stderr.read() == b""
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    assert mq.receive_many(10, block=False) == [b"second", b"last, without a newline"]


class Stream:
    """A writer thread feeding numbered lines, `size` bytes each, into a pipe as fast as it
    takes them, until stopped; this process keeps the read end too, to collect what the
    child left unread."""

    def __init__(self, size):
        self.read, self.write = os.pipe()
        self.size = size
        self.written = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._feed)
        self.thread.start()

    def _feed(self):
        n = 0
        while not self.stopped.is_set():
            chunk = b"".join(b"%d " % i + b"x" * (self.size - len(b"%d \n" % i)) + b"\n" for i in range(n, n + 16))
            n += 16
            os.write(self.write, chunk)
            self.written.append(chunk)

    def unread(self):
        """Stop the writer and collect what is left in the pipe (the child has exited)."""
        self.stopped.set()
        os.set_blocking(self.read, False)
        left = []
        while True:
            # Whether the writer had ended before this read: if so, an empty pipe is all read.
            # (Asked after the read, the writer could have written its last chunk in between.)
            ended = not self.thread.is_alive()
            try:
                chunk = os.read(self.read, 65536)
            except BlockingIOError:
                if ended:
                    break
                self.thread.join(0.01)
                continue
            left.append(chunk)
        os.close(self.read)
        os.close(self.write)
        return b"".join(left)


def resident_kib(pid, field="VmRSS"):
    """The process's memory of that kind, in KiB; None once it has exited (a zombie has none,
    and a process that poll() reaped has no /proc entry)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return next((int(line.split()[1]) for line in status if line.startswith(field + ":")), None)
    except FileNotFoundError:
        return None


def interpreter_kib():
    """What an interpreter that imported the command line holds before it does anything
    (PyPy's JIT starts near 70 MiB, CPython near 20): the floor of a sender's memory."""
    code = "import sysvmq.tools.cli, os; print(open(f'/proc/{os.getpid()}/status').read())"
    status = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True).stdout
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))


def drain_until_exit(mq, process, until=None, within=30, most_kib=256 * 1024):
    """Every message `process` sends, as it sends them; `until(received)` runs each round.
    Fails if it holds more than `most_kib` of memory (a sender that hoards its input)."""
    received = []
    deadline = time.monotonic() + within
    while process.poll() is None or mq.stats().count:
        assert time.monotonic() < deadline, f"{len(received)} messages, still running"
        try:
            received += mq.receive_many(256, timeout=0.05)
        except sysvmq.QueueTimeoutError:
            pass
        held = resident_kib(process.pid)
        assert held is None or held < most_kib, f"the sender holds {held} KiB after {len(received)} messages"
        if until is not None:
            until(received)
    return received


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_ends_send_lines_with_every_line_read_sent(mq, signum):
    stream = Stream(size=100)
    try:
        sender = subprocess.Popen(
            [script(), "send", "--id", str(mq.id), "--lines"],
            stdin=stream.read,
            stderr=subprocess.PIPE,
            env=child_env(),
        )
    except BaseException:
        stream.unread()
        raise
    signalled = []

    def stop_after_some(received):
        if len(received) >= 2000 and not signalled:
            sender.send_signal(signum)  # in the middle of the stream, the input still open
            signalled.append(len(received))

    try:
        received = drain_until_exit(mq, sender, stop_after_some)
    finally:
        if sender.poll() is None:
            sender.kill()
        status = sender.wait()
        left = stream.unread()
    assert status == 128 + signum and sender.stderr.read() == b""
    written = b"".join(stream.written)
    sent = b"".join(line + b"\n" for line in received)
    assert left, "the sender read everything: the signal came too late to tell"
    if sent[:-1] + left == written:  # it had read part of a line: sent as the last message
        sent = sent[:-1]
    assert sent + left == written  # every byte read was sent, in order, once


def test_send_lines_memory_is_flat_on_a_long_stream(mq):
    stream = Stream(size=1000)
    sender = subprocess.Popen(
        [script(), "send", "--id", str(mq.id), "--lines"], stdin=stream.read, stderr=subprocess.PIPE, env=child_env()
    )
    peak = []
    most_kib = interpreter_kib() + 64 * 1024

    def measure(received):
        if len(received) >= 100_000 and not peak:  # 100 MB through it
            peak.append(resident_kib(sender.pid, "VmHWM"))
            sender.send_signal(signal.SIGTERM)

    try:
        drain_until_exit(mq, sender, measure, within=60, most_kib=most_kib)
    finally:
        if sender.poll() is None:
            sender.kill()
        sender.wait()
        stream.unread()
    assert peak and peak[0] is not None and peak[0] < most_kib, f"peak resident set {peak[0]} KiB"


@pytest.mark.parametrize("longest", [1, 100])
def test_a_line_longer_than_the_kernel_takes_is_one_line_of_error(mq, limits, longest):
    data = b"ok\n" + b"x" * (limits.msgmax + longest) + b"\nnever read\n"
    result = cli("send", "--id", str(mq.id), "--lines", input=data)
    err = one_line_error(result)
    assert "kernel.msgmax" in err
    assert mq.receive_many(10, block=False) == [b"ok"]


def test_an_endless_standard_input_is_one_line_of_error_in_bounded_memory(mq):
    stream = Stream(size=1000)  # `yes | sysvmq send KEY`
    sender = subprocess.Popen(
        [script(), "send", "--id", str(mq.id)], stdin=stream.read, stderr=subprocess.PIPE, env=child_env()
    )
    most_kib = interpreter_kib() + 64 * 1024
    deadline = time.monotonic() + 30
    try:
        while sender.poll() is None:
            held = resident_kib(sender.pid)
            assert held is None or held < most_kib, f"the sender holds {held} KiB of its input"
            assert time.monotonic() < deadline, "still reading"
            time.sleep(0.005)  # polling the sender's memory and its end: the state itself
    finally:
        if sender.poll() is None:
            sender.kill()
        sender.wait()
        stream.unread()
    err = sender.stderr.read().decode()
    assert sender.returncode == 1 and err.count("\n") == 1 and "kernel.msgmax" in err, err
    assert mq.stats().count == 0


def test_a_non_blocking_stdin_is_read_to_its_end(mq):
    import fcntl
    import termios

    read, write = os.pipe()
    os.set_blocking(read, False)  # as a parent that shares it may leave it
    try:
        sender = subprocess.Popen(
            [script(), "send", "--id", str(mq.id)], stdin=read, stderr=subprocess.PIPE, env=child_env()
        )
        os.write(write, b"the first part, ")
        unread = bytearray(4)
        deadline = time.monotonic() + 30
        while sender.poll() is None:  # until it has read that and waits for more (or ended)
            fcntl.ioctl(read, termios.FIONREAD, unread)
            waiting = "poll" in pathlib.Path(f"/proc/{sender.pid}/wchan").read_text()
            if waiting and not int.from_bytes(unread, sys.byteorder):
                break
            assert time.monotonic() < deadline, "it never read the first part"
            time.sleep(0.005)  # polling the pipe and the sender's wait: the state itself
        os.write(write, b"then the rest")
        os.close(write)
        write = None
        assert (sender.wait(30), sender.stderr.read()) == (0, b"")
    finally:
        os.close(read)
        if write is not None:
            os.close(write)
    assert mq.receive_many(10, block=False) == [b"the first part, then the rest"]


def another_reader_takes_the_first_read(monkeypatch, fd):
    """os.read as it goes for a reader that shares a non-blocking input with another one:
    poll() said there was input, but the other took it first (EAGAIN), once."""
    from sysvmq.tools import streams

    real, taken = os.read, []

    def read(read_fd, n):
        if read_fd == fd and not taken:
            taken.append(n)
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real(read_fd, n)

    monkeypatch.setattr(streams.os, "read", read)
    return taken


@pytest.mark.parametrize("reader", ["read_all", "lines_of"])
def test_input_another_reader_took_first_is_waited_for_again(monkeypatch, reader):
    from sysvmq.tools import streams

    read, write = os.pipe()
    stop_read, stop_write = os.pipe()
    try:
        os.set_blocking(read, False)
        os.write(write, b"one\ntwo")
        os.close(write)
        write = None
        taken = another_reader_takes_the_first_read(monkeypatch, read)
        reads = {
            "read_all": lambda: streams.read_all(read, 100),
            "lines_of": lambda: b"|".join(streams.lines_of(read, stop_read, 100)),
        }
        assert reads[reader]() == (b"one\ntwo" if reader == "read_all" else b"one|two") and taken
    finally:
        for fd in (read, write, stop_read, stop_write):
            if fd is not None:
                os.close(fd)


def with_descriptors_up_to(highest):
    """A preexec_fn leaving descriptors 3 to `highest` open (/dev/null), as a parent with many
    open files may pass them on: the next one the command opens is above them."""
    import resource

    def occupy():
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft <= highest + 16:
            resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 16, hard))
        null = os.open(os.devnull, os.O_RDONLY)
        os.set_inheritable(null, True)
        for fd in range(3, highest + 1):
            if fd != null:
                os.dup2(null, fd)

    return occupy


@pytest.mark.parametrize("command", ["send --lines", "watch --count 2 --interval 0.01"])
def test_descriptors_above_1023_work_as_the_others(mq, command):
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 1100:
        pytest.skip(f"at most {hard} open files")
    result = subprocess.run(
        [script(), *command.split(), "--id", str(mq.id)],
        input=b"one\ntwo\n",
        capture_output=True,
        timeout=30,
        env=child_env(),
        close_fds=False,
        preexec_fn=with_descriptors_up_to(1050),
    )
    assert (result.returncode, result.stderr) == (0, b"")
    if command.startswith("send"):
        assert mq.receive_many(10, block=False) == [b"one", b"two"]
    else:
        assert len(result.stdout.splitlines()) == 2


def wait_for_a_new_queue(before, process, within=60):
    deadline = time.monotonic() + within
    while not queue_ids() - before:
        assert process.poll() is None, f"it ended first: {process.returncode}"
        assert time.monotonic() < deadline, "no queue appeared"
        time.sleep(0.005)  # polling the kernel's list: the state itself, not a guess at a delay


@pytest.mark.parametrize("command", ["bench", "demo"])
@pytest.mark.parametrize(
    "signum, group",
    [
        (signal.SIGINT, False),
        (signal.SIGTERM, False),  # `timeout 10 sysvmq bench`
        (signal.SIGHUP, False),
        (signal.SIGINT, True),  # Ctrl-C: the whole foreground job
        (signal.SIGHUP, True),  # a closed terminal
    ],
)
def test_a_command_that_makes_a_queue_removes_it_whatever_stops_it(command, signum, group):
    before = queue_ids()
    process = subprocess.Popen(
        [script(), command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=child_env(),
        start_new_session=True,
    )
    try:
        wait_for_a_new_queue(before, process)
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        status = process.wait(30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    err = process.stderr.read().decode()
    assert "Traceback" not in err and "Error" not in err, err
    assert queue_ids() == before
    if not group:
        assert status == 128 + signum
    deadline = time.monotonic() + 10
    with pytest.raises(ProcessLookupError):  # none of its helpers outlives it
        while time.monotonic() < deadline:
            os.killpg(process.pid, 0)
            time.sleep(0.01)


def test_a_stop_signal_while_a_queue_is_made_waits_until_its_removal_is_promised():
    from sysvmq.tools.cleanup import Cleanup, Stopped

    removed = []

    def make():
        made = sysvmq.MessageQueue(sysvmq.IPC_PRIVATE)
        os.kill(os.getpid(), signal.SIGTERM)  # in the instant after the kernel made it
        for _ in range(1000):
            pass  # handlers run here, between bytecodes: this one waits
        return made

    def remove(mq):
        mq.destroy()
        removed.append(mq)

    with pytest.raises(Stopped) as stopped, Cleanup() as cleanup, cleanup.made(make, remove):
        raise AssertionError("the stop signal did not stop it")
    assert stopped.value.signum == signal.SIGTERM and len(removed) == 1
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_hangup_the_parent_ignored_leaves_the_benchmark_running():
    before = queue_ids()
    process = subprocess.Popen(
        [script(), "bench"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=child_env(),
        preexec_fn=nohup,
    )
    try:
        wait_for_a_new_queue(before, process)
        process.send_signal(signal.SIGHUP)
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(1)  # generous: a stopped benchmark ends at once
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 128 + signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert queue_ids() == before


STOPPED_WHILE_MULTIPROCESSING_STREAMS = """
import os, signal, threading, time
from multiprocessing import queues

from sysvmq.tools import benchmark
from sysvmq.tools.cleanup import Stopped

me, used = os.getpid(), []
for name in ("put", "get"):
    def noting(self, *args, _call=getattr(queues.Queue, name), _name=name, **kwargs):
        if os.getpid() == me:
            used.append(_name)
        return _call(self, *args, **kwargs)
    setattr(queues.Queue, name, noting)

def children():
    with open(f"/proc/{me}/task/{me}/children") as f:
        return f.read().split()

def stop_once_both_run():
    deadline = time.monotonic() + 30
    while len(children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    os.kill(me, signal.SIGTERM)

threading.Thread(target=stop_once_both_run, daemon=True).start()
try:
    with benchmark.CLEANUP:
        benchmark.mp_stream(16, 10_000_000)  # far longer than the test waits
except Stopped as e:
    print(e.signum, used, children(), flush=True)
"""


def test_a_benchmark_stopped_while_multiprocessing_streams_exits_and_leaves_no_process():
    # This process only starts, watches and ends the producer and the consumer: a stop
    # raised here finds no lock of the queue taken (one left taken keeps the exit waiting
    # for good), and both are gone by the exit.
    done = run_python(STOPPED_WHILE_MULTIPROCESSING_STREAMS, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{int(signal.SIGTERM)} [] []\n", "")


STOPPED_AS_A_POLL_TAKES_ITS_LOCK = """
import signal, subprocess, sys, threading

from sysvmq.tools import benchmark
from sysvmq.tools.cleanup import Stopped


class Lock:
    # A Popen's waitpid lock, where a stop signal comes just as poll() has taken it.
    def __init__(self):
        self.lock, self.polls = threading.Lock(), 0

    def acquire(self, blocking=True, timeout=-1):
        taken = self.lock.acquire(blocking, timeout)
        self.polls += 1
        if taken and self.polls == 50:
            signal.raise_signal(signal.SIGTERM)  # its handler runs here: taken, not yet in the try
        return taken

    def release(self):
        self.lock.release()

    __enter__ = acquire

    def __exit__(self, *exc_info):
        self.release()


init = subprocess.Popen.__init__

def init_with_that_lock(self, *args, **kwargs):
    init(self, *args, **kwargs)
    self._waitpid_lock = Lock()

subprocess.Popen.__init__ = init_with_that_lock
sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
try:
    with benchmark.CLEANUP:
        benchmark.process_pair(sleeper, sleeper)
except Stopped as e:
    print(e.signum, flush=True)
"""


def test_a_benchmark_stopped_as_it_polls_a_process_exits():
    # subprocess's poll() takes a lock; a stop raised just after would leave it taken for
    # the wait() that ends that process, which would then wait for good.
    done = run_python(STOPPED_AS_A_POLL_TAKES_ITS_LOCK, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{int(signal.SIGTERM)}\n", "")


def test_a_second_stop_signal_ends_send_lines_waiting_for_room_and_says_what_was_not_sent(mq):
    mq.set(max_bytes=2)
    mq.send(b"12")  # full: nobody receives
    sender = send_lines(mq)
    try:
        sender.stdin.write(b"a\nb\nc\n")
        sender.stdin.flush()
        deadline = time.monotonic() + 20
        while "msgsnd" not in pathlib.Path(f"/proc/{sender.pid}/wchan").read_text():
            assert time.monotonic() < deadline, "send --lines never waited for room"
            time.sleep(0.01)
        sender.send_signal(signal.SIGTERM)  # ends the reading; the lines read still wait for room
        sender.send_signal(signal.SIGINT)  # ends that wait (two kinds: one cannot coalesce the other)
        status = sender.wait(10)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
        sender.stdin.close()
    err = sender.stderr.read().decode()
    assert status in (128 + signal.SIGINT, 128 + signal.SIGTERM)
    assert len(err.splitlines()) == 1 and "3 line(s) read were not sent" in err, err
    assert mq.receive_many(10, block=False) == [b"12"]


@pytest.mark.parametrize("wait", [["--nowait"], ["--timeout", "0.1"]])
def test_send_lines_without_room_says_how_many_lines_read_were_not_sent(mq, wait):
    mq.set(max_bytes=4)
    err = one_line_error(cli("send", "--id", str(mq.id), "--lines", *wait, input=b"ab\ncd\nef\ngh"), NOTHING)
    assert "2 line(s) sent, 2 line(s) read were not sent" in err
    assert mq.receive_many(10, block=False) == [b"ab", b"cd"]
