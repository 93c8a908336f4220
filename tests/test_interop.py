"""Other clients on the same queues: Perl IPC::Msg and util-linux ipcs/ipcmk/ipcrm."""

import shutil
import subprocess

import pytest
from conftest import child_env

import sysvmq

needs_perl = pytest.mark.skipif(shutil.which("perl") is None, reason="perl is not installed")
needs_util_linux = pytest.mark.skipif(shutil.which("ipcmk") is None, reason="util-linux ipc tools are not installed")


def signed(key: int) -> str:
    """The key as C's key_t (and so Perl) spells it: 0xDEADC0DE is -559038242."""
    return str(key - 2**32 if key >= 2**31 else key)


def perl(code: str, *args: str) -> str:
    return subprocess.run(
        ["perl", "-MIPC::Msg", "-MIPC::SysV=IPC_NOWAIT", "-e", code, "--", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env=child_env(),
    ).stdout


@needs_perl
def test_perl_sends_python_receives(make_queue, free_key):
    mq = make_queue(free_key, create=True)
    perl(
        'my $q = IPC::Msg->new($ARGV[0], 0) or die "$!"; $q->snd(7, "perl\\0bytes\\xff") or die "$!";', signed(free_key)
    )
    assert mq.receive_message(block=False) == sysvmq.Message(7, b"perl\x00bytes\xff")


@needs_perl
def test_python_sends_perl_receives(make_queue, free_key):
    mq = make_queue(free_key, create=True)
    mq.send(b"py\x00thon", type=3)
    mq.send(b"second", type=9)
    out = perl(
        'my $q = IPC::Msg->new($ARGV[0], 0) or die "$!"; my $buf;'
        'my $t = $q->rcv($buf, 100, 9, IPC_NOWAIT); print "$t ", unpack("H*", $buf), "\\n";'
        '$t = $q->rcv($buf, 100, 0, IPC_NOWAIT); print "$t ", unpack("H*", $buf), "\\n";',
        signed(free_key),
    )
    assert out.splitlines() == ["9 " + b"second".hex(), "3 " + b"py\x00thon".hex()]


@needs_util_linux
def test_ipcmk_queue_is_usable_and_ipcs_sees_our_messages():
    out = subprocess.run(
        ["ipcmk", "-Q", "-p", "0600"], capture_output=True, text=True, check=True, env=child_env()
    ).stdout
    msqid = int(out.split(":")[-1])
    try:
        mq = sysvmq.MessageQueue.from_id(msqid)
        again = sysvmq.MessageQueue(mq.key)
        assert again.id == msqid
        mq.send(b"12345")
        mq.send(b"678")
        detail = subprocess.run(
            ["ipcs", "-q", "-i", str(msqid)], capture_output=True, text=True, check=True, env=child_env()
        ).stdout
        assert "cbytes=8" in detail.replace(" ", "") and "qnum=2" in detail.replace(" ", "")
        assert (
            f"{mq.key:#010x}"
            in subprocess.run(["ipcs", "-q"], capture_output=True, text=True, check=True, env=child_env()).stdout
        )
    finally:
        subprocess.run(["ipcrm", "-q", str(msqid)], check=True, env=child_env())


@needs_util_linux
def test_ipcrm_removes_our_queue_under_us(make_queue, free_key):
    mq = make_queue(free_key, create=True)
    subprocess.run(["ipcrm", "-Q", hex(free_key)], check=True, env=child_env())
    with pytest.raises(sysvmq.QueueRemovedError):
        mq.send(b"gone")
    with pytest.raises(sysvmq.QueueNotFoundError):
        sysvmq.MessageQueue(free_key)
