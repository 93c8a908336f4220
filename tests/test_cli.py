"""The sysvmq command, run as a real process."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import sysvmq


def cli(*args, input=None, check=False, timeout=30):
    result = subprocess.run([sys.executable, "-m", "sysvmq", *args], input=input, capture_output=True, timeout=timeout)
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
    assert subprocess.run([script, "--help"], capture_output=True).returncode == 0


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
    out = subprocess.run(["bash", "-c", f"{script()} --version >&-"], capture_output=True, timeout=30)
    assert out.returncode == 1 and b"standard output" in out.stderr and out.stderr.count(b"\n") == 1


def test_follow_drains_and_ctrl_c_exits_130(mq):
    mq.send_many([b"1", b"2", b"3"])
    process = subprocess.Popen(
        [sys.executable, "-m", "sysvmq", "receive", "--id", str(mq.id), "--follow"], stdout=subprocess.PIPE
    )
    lines = [process.stdout.readline() for _ in range(3)]
    assert lines == [b"1\n", b"2\n", b"3\n"]
    time.sleep(0.2)  # now waiting for more
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
    ipcs = subprocess.run(["ipcs", "-q", "-i", str(mq.id)], capture_output=True, text=True, check=True).stdout
    assert "cbytes=8" in ipcs.replace(" ", "") and "qnum=2" in ipcs.replace(" ", "")
    text = cli("stat", "--id", str(mq.id), check=True).stdout.decode()
    assert "count" in text and "max_bytes" in text and "0600" in text


def test_ls_lists_queues_of_other_clients(make_queue, free_key):
    made = subprocess.run(["ipcmk", "-Q"], capture_output=True, text=True, check=True).stdout
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
        subprocess.run(["ipcrm", "-q", str(ipcmk_id)], check=True)


def test_rm_by_key_and_id_reports_each(make_queue, free_key):
    a = make_queue(free_key, create=True)
    b = make_queue(sysvmq.IPC_PRIVATE)
    out = cli("rm", hex(free_key), "--id", str(b.id), check=True).stdout.decode()
    assert f"id={a.id}" in out and f"id={b.id}" in out
    assert not {a.id, b.id} & {q.id for q in sysvmq.queues()}
    err = one_line_error(cli("rm", hex(free_key)))
    assert f"{free_key:#010x}" in err


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
        (["receive", "0x1", "--nowait", "--timeout", "1"], 2),
        (["send", "0x1", "x", "--nowait", "--timeout", "1"], 2),
        (["receive", "0x1", "--type", "99999999999999999999"], 2),  # beyond a C long
        (["send", "0x1", "x", "--type", "0"], 2),
        (["send", "0x1", "x", "--type", "-3"], 2),
    ],
)
def test_usage_errors(args, code):
    result = cli(*args)
    assert result.returncode == code
    assert "Traceback" not in result.stderr.decode()
    if "--mode" in args or "--exclusive" in args:
        assert "--create" in result.stderr.decode()


def test_missing_queue_is_one_line_naming_it(free_key):
    err = one_line_error(cli("stat", hex(free_key)))
    assert f"{free_key:#010x}" in err and "create" in err


def script():
    return os.path.join(os.path.dirname(sys.executable), "sysvmq")


def shell(command, timeout=30):
    """Run `command` under bash; its stdout, and the exit status of its first pipeline stage."""
    out = subprocess.run(
        ["bash", "-c", command + '; echo "status=${PIPESTATUS[0]}"'], capture_output=True, timeout=timeout
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
    assert "exists" in err.lower()
    assert mq.stats().count == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="another user's queue needs root")
def test_send_create_refuses_a_queue_another_user_made_first(free_key):
    from test_permissions import as_nobody

    kind, msqid = as_nobody(lambda: sysvmq.MessageQueue(free_key, create=True, mode=0o666).id)
    assert kind == "ok"
    try:
        err = one_line_error(cli("send", hex(free_key), "secret", "--create", "--mode", "600"))
        assert "65534" in err and "exclusive" in err
        assert sysvmq.MessageQueue.from_id(msqid).stats().count == 0
    finally:
        sysvmq.MessageQueue.from_id(msqid).destroy()


def test_a_message_that_cannot_be_put_back_is_reported(mq):
    from sysvmq.tools.output import put_back

    gone = sysvmq.MessageQueue(sysvmq.IPC_PRIVATE)
    gone.destroy()
    with pytest.raises(sysvmq.QueueRemovedError, match=r"type 3 \(2 bytes\) could not be written, nor put back"):
        put_back(gone, sysvmq.Message(3, b"xy"))


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
        receiver = subprocess.Popen([script(), "receive", "--id", str(mq.id), "--follow"], stdout=out)
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
