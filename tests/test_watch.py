"""sysvmq watch: plain lines off a terminal, the live view in a real one (tmux)."""

import os
import platform
import re
import select
import signal
import subprocess
import sys
import time

import pytest
from _tmux import terminal
from conftest import child_env

import sysvmq
from sysvmq.tools import watch

LINE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d key=(0x[0-9a-f]{8}|-) id=(\d+|-) count=(\d+|-) bytes=(\d+|-)"
    r" max_bytes=(\d+|-) status=(\w+)\Z"
)


def script():
    return os.path.join(os.path.dirname(sys.executable), "sysvmq")


STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def start(*args, preexec_fn=None, **kwargs):
    """The watch as a shell's foreground job starts it: the stop signals at SIG_DFL, whatever
    this run inherited (nohup, a background job), then what `preexec_fn` changes."""

    def prepare():
        for signum in STOPS:
            signal.signal(signum, signal.SIG_DFL)
        if preexec_fn is not None:
            preexec_fn()

    return subprocess.Popen(
        [script(), "watch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=prepare,
        env=child_env(),
        **kwargs,
    )


def read_until(process, test, within=20.0):
    """Lines of `process` until one passes `test` (that line returned); fails after `within` s."""
    deadline = time.monotonic() + within
    seen = []
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no such line; the last ones: {seen[-5:]}"
        if select.select([process.stdout], [], [], left)[0]:
            line = process.stdout.readline()
            assert line, f"the watch ended: {process.wait(10)}, {process.stderr.read()}"
            seen.append(line.rstrip("\n"))
            if test(seen[-1]):
                return seen[-1]


def stop(process, signum=signal.SIGTERM):
    process.send_signal(signum)
    try:
        return process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def fields(line):
    match = LINE.match(line)
    assert match, line
    return dict(zip(("key", "id", "count", "bytes", "max_bytes", "status"), match.groups()))


def test_plain_lines_name_each_queue_each_refresh(mq, make_queue, free_key):
    keyed = make_queue(free_key, create=True)
    keyed.send_many([b"abc", b"de"])
    absent = free_key ^ 1 if free_key ^ 1 else 2
    out = subprocess.run(
        [script(), "watch", hex(free_key), hex(absent), "--id", str(mq.id), "--count", "2", "--interval", "0.05"],
        capture_output=True,
        text=True,
        timeout=30,
        env=child_env(),
    )
    assert out.returncode == 0 and out.stderr == ""
    lines = [fields(line) for line in out.stdout.splitlines()]
    expected = [
        {"key": f"{free_key:#010x}", "id": str(keyed.id), "count": "2", "bytes": "5", "status": "ok"},
        {"key": f"{absent:#010x}", "id": "-", "count": "-", "bytes": "-", "status": "absent"},
        {"key": "0x00000000", "id": str(mq.id), "count": "0", "bytes": "0", "status": "ok"},
    ]
    assert [{k: line[k] for k in expected[0]} for line in lines] == expected * 2  # keys first, then ids


def test_every_queue_when_none_is_named(mq, make_queue):
    other = make_queue(sysvmq.IPC_PRIVATE)
    other.send(b"x")
    out = subprocess.run([script(), "watch", "--once"], capture_output=True, text=True, timeout=30, env=child_env())
    assert out.returncode == 0
    by_id = {line["id"]: line for line in map(fields, out.stdout.splitlines())}
    assert by_id[str(mq.id)]["count"] == "0" and by_id[str(other.id)]["count"] == "1"
    assert len(by_id) == len(sysvmq.queues())


def test_a_queue_appearing_and_removed_while_watched(free_key):
    process = start(hex(free_key), "--interval", "0.05")
    try:
        read_until(process, lambda line: fields(line)["status"] == "absent")
        mq = sysvmq.MessageQueue(free_key, create=True)
        try:
            read_until(process, lambda line: fields(line)["status"] == "ok")
            mq.send_many([b"1", b"2", b"3"])
            read_until(process, lambda line: fields(line)["count"] == "3")
        finally:
            mq.destroy()
        read_until(process, lambda line: fields(line)["status"] == "absent")
        assert stop(process) == 128 + signal.SIGTERM
        assert process.stderr.read() == ""
    finally:
        stop(process, signal.SIGKILL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_ends_it_quietly(mq, signum):
    process = start("--id", str(mq.id), "--interval", "0.05")
    read_until(process, lambda line: True)  # its handlers are in place before the first line
    assert stop(process, signum) == 128 + signum
    assert process.stderr.read() == ""


def test_stop_signals_the_parent_left_blocked_still_stop_it(mq):
    process = start(
        "--id", str(mq.id), "--interval", "0.05", preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
    )
    read_until(process, lambda line: True)
    assert stop(process) == 128 + signal.SIGTERM


def test_a_hangup_the_parent_ignored_stays_ignored(mq):
    process = start(
        "--id", str(mq.id), "--interval", "0.05", preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)
    )
    read_until(process, lambda line: True)
    process.send_signal(signal.SIGHUP)  # nohup: keep going
    mq.send(b"after the hangup")
    read_until(process, lambda line: fields(line)["count"] == "1")
    assert stop(process) == 128 + signal.SIGTERM


def test_a_closed_pipe_ends_it_quietly(mq):
    out = subprocess.run(
        ["bash", "-c", f'{script()} watch --interval 0.01 | head -1; echo "status=${{PIPESTATUS[0]}}"'],
        capture_output=True,
        text=True,
        timeout=30,
        env=child_env(),
    )
    body, status = out.stdout.rsplit("status=", 1)
    assert status.strip() == "0" and out.stderr == ""
    assert fields(body.strip())["status"] == "ok"


def test_closed_stdout_is_one_line(mq):
    out = subprocess.run(
        ["bash", "-c", f"{script()} watch --once >&-"], capture_output=True, text=True, timeout=30, env=child_env()
    )
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "standard output" in out.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="another user needs root")
def test_another_users_queue(mq):
    from test_permissions import as_nobody

    mq.send(b"private")
    kind, rows = as_nobody(lambda: watch.sample([watch.Target(True, mq.id)]))
    assert kind == "ok" and rows[0].status in ("ok", "denied")  # listed by MSG_STAT_ANY since Linux 4.17
    # Where the kernel lists only readable queues, a named one is looked at directly.
    kind, rows = as_nobody(lambda: (setattr(watch, "queues", list), watch.sample([watch.Target(True, mq.id)]))[1])
    assert kind == "ok" and rows == [watch.Row(None, mq.id, None, "denied")]
    assert watch.plain_lines(rows, 0)[0].endswith(f"key=- id={mq.id} count=- bytes=- max_bytes=- status=denied")


@pytest.mark.parametrize(
    "args",
    [
        ["--interval", "0"],
        ["--interval", "-1"],
        ["--interval", "nan"],
        ["--interval", "inf"],
        ["--interval", "1e3"],
        ["--interval", ""],
        ["--interval", "1,5"],
        ["--interval", "86400"],
        ["--count", "0"],
        ["--once", "--count", "2"],
        ["0"],
        ["0x1", "--id", "x"],
        ["--id", "2147483648"],
        ["0x100000000"],
        [" 12"],
    ],
)
def test_usage_errors(args):
    out = subprocess.run([script(), "watch", *args], capture_output=True, text=True, timeout=30, env=child_env())
    assert out.returncode == 2 and "Traceback" not in out.stderr and out.stdout == ""


def stats(count, bytes, max_bytes=100, msqid=1):
    return sysvmq.QueueStats(0x10, msqid, 0o600, 0, 0, 0, 0, count, bytes, max_bytes, 0, 0, 0, 0, 0)


def test_sparkline_scales_to_the_peak_and_keeps_the_last_depth():
    now = 1000.0
    samples = [(now - 30, 0), (now - 20, 4), (now - 10, 8)]
    line = watch.sparkline(samples, 6, now)
    assert line == "   ▁▅█"  # blank before the first sample; 0 lowest, 8 highest, 4 half way
    assert watch.sparkline([(now - 59, 2)], 3, now) == "███"  # carried forward
    assert watch.sparkline([(now - 59, 0)], 3, now) == "▁▁▁"
    assert watch.sparkline([(now - 61, 5)], 3, now) == "   "  # older than the window
    assert watch.sparkline([(now - 30, 3)], 4, now, watch.ASCII) == "  @@"


@pytest.mark.parametrize(
    "used, capacity, expected",
    [
        (0, 100, "[····]   0%"),
        (50, 100, "[██··]  50%"),
        (100, 100, "[████] 100%"),
        (1, 1000, "[█···] <1%"),
        (9, 0, "[████] 100%"),
    ],
)
def test_fill_bar(used, capacity, expected):
    assert watch.fill_bar(used, capacity, 4) == expected


def test_the_view_fits_a_narrow_terminal_and_counts_what_does_not_fit():
    rows = [watch.Row(0x10 + i, i, stats(i, i, msqid=i), "ok") for i in range(20)]
    rows.append(watch.Row(0x99, None, None, "denied"))
    history = {row.id: __import__("collections").deque([(99.0, row.id)]) for row in rows[:20]}
    wide = watch.screen_lines(rows, history, (120, 40), 1.0, (0.0, 100.0), watch.UNICODE)
    assert "FILL" in wide[1] and "LAST MINUTE" in wide[1] and "█" in wide[3] and "permission denied" in wide[-1]
    narrow = watch.screen_lines(rows, history, (30, 8), 1.0, (0.0, 100.0), watch.UNICODE)
    assert len(narrow) == 8 and all(len(line) < 30 for line in narrow)
    assert narrow[-1].startswith("... 16 more queue(s)")
    for lines in (2, 1):  # the title and the header are not queues
        short = watch.screen_lines(rows[:1], history, (80, lines), 1.0, (0.0, 100.0), watch.UNICODE)
        assert len(short) == lines and short[-1].startswith("... 1 more queue(s)"), short
    assert not any("more" in line for line in watch.screen_lines([], {}, (80, 2), 1.0, (0.0, 0.0), watch.UNICODE))
    assert watch.screen_lines([], {}, (80, 24), 1.0, (0.0, 0.0), watch.UNICODE)[2] == "(no queues)"


def test_ascii_where_the_terminal_has_no_block_characters():
    assert watch.glyphs_for("ascii") is watch.ASCII and watch.glyphs_for("nonsense") is watch.ASCII
    assert watch.glyphs_for("utf-8") is watch.UNICODE


# After the watch: its status and the terminal's echo and line-editing modes, on one line.
AFTER = "; s=$?; echo modes: $(stty -a | tr ' ;' '\\n\\n' | grep -x -e -echo -e echo -e -icanon -e icanon) status=$s; exec sleep 600"


def restored(term):
    """The shell's screen is back, the cursor shown, echo and line editing on; the status."""
    shown = term.wait_for(lambda s: "status=" in s)
    assert term.flag("alternate_on") == "0" and term.flag("cursor_flag") == "1"
    modes = next(line for line in shown.splitlines() if line.startswith("modes:")).split()
    assert modes[1:3] == ["icanon", "echo"], modes
    return int(modes[3].split("=")[1])


def row_of(screen, msqid):
    return next((line for line in screen.splitlines() if re.match(rf"(0x[0-9a-f]{{8}}|-) +{msqid} ", line)), "")


def test_the_live_view_in_a_terminal(mq, make_queue):
    other = make_queue(sysvmq.IPC_PRIVATE)
    mq.send(b"one")
    command = f"echo before; {script()} watch --id {mq.id} {other.id} --interval 0.2" + AFTER
    with terminal(command) as term:
        shown = term.wait_for(lambda s: "KEY" in s and f" {other.id} " in s)
        assert "before" not in shown and term.flag("alternate_on") == "1" and term.flag("cursor_flag") == "0"
        assert re.search(r"\[█·+\] <1%", row_of(shown, mq.id)) and "max 1" in row_of(shown, mq.id)
        assert "▁ max 0" in row_of(shown, other.id)
        mq.send_many([b"two", b"three"])
        term.wait_for(lambda s: re.search(r" 3 +11 +\d+ .*█ max 3", row_of(s, mq.id)) is not None)
        other.destroy()
        term.wait_for(lambda s: "no such queue" in row_of(s, other.id))
        term.keys("C-c")
        assert restored(term) == 130
        assert "before" in term.screen() and "KEY" not in term.screen()


def test_resize_to_a_narrow_terminal_then_quit_with_q(mq):
    command = f"{script()} watch --id {mq.id} --interval 0.2" + AFTER
    with terminal(command, columns=100, lines=20) as term:
        term.wait_for(lambda s: "FILL" in s)
        term.tmux("resize-window", "-x", "36", "-y", "6")
        # tmux cuts the old frame at 36 columns at once; the watch's own frame stays within 35.
        term.wait_for(lambda s: "KEY" in s and "FILL" not in s and all(len(line) < 36 for line in s.splitlines()))
        term.keys("q")
        assert restored(term) == 0


@pytest.mark.xfail(
    platform.python_implementation() == "PyPy",
    reason="PyPy replaces an inherited SIG_IGN of SIGINT with its own handler before any code runs",
)
def test_a_terminal_whose_shell_ignores_ctrl_c(mq):
    command = f"trap '' INT; {script()} watch --id {mq.id} --interval 0.1" + AFTER
    with terminal(command) as term:
        term.wait_for(lambda s: "KEY" in s)
        term.keys("C-c")  # ignored, as the parent asked
        mq.send(b"still watching")
        term.wait_for(lambda s: "max 1" in s)
        term.keys("q")
        assert restored(term) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_gives_the_terminal_back(mq, tmp_path, signum):
    pid_file = tmp_path / "pid"
    inner = f"echo $$ > {pid_file}; exec {script()} watch --id {mq.id} --interval 0.2"
    with terminal(f"sh -c '{inner}'" + AFTER) as term:
        term.wait_for(lambda s: "KEY" in s)
        os.kill(int(pid_file.read_text()), signum)
        assert restored(term) == 128 + signum


def test_ctrl_z_gives_the_terminal_back_and_fg_resumes(mq, tmp_path):
    # Under an interactive bash, which keeps the tty modes of its jobs itself: what is checked
    # here is the screen and the cursor (the other tests check the modes).
    (tmp_path / "rc").write_text("PS1='$ '\n")
    with terminal(f"exec bash --rcfile {tmp_path / 'rc'} -i") as term:
        term.wait_for(lambda s: s.rstrip().endswith("$"))
        term.keys(f"{script()} watch --id {mq.id} --interval 0.2", "Enter")
        term.wait_for(lambda s: "KEY" in s)
        term.keys("C-z")
        shown = term.wait_for(lambda s: "Stopped" in s)
        assert term.flag("alternate_on") == "0" and term.flag("cursor_flag") == "1" and "KEY" not in shown
        term.keys("clear; fg", "Enter")
        mq.send(b"sent while it was stopped")
        term.wait_for(lambda s: "KEY" in s and "max 1" in s)
        assert term.flag("alternate_on") == "1" and term.flag("cursor_flag") == "0"
        term.keys("q")
        term.wait_for(lambda s: "KEY" not in s)
        term.keys("echo status=$?", "Enter")
        assert "status=0" in term.wait_for(lambda s: "status=0" in s or "status=1" in s)
        assert term.flag("alternate_on") == "0" and term.flag("cursor_flag") == "1"
