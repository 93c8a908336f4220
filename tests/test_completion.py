"""sysvmq completion bash|zsh|fish: each script loaded and asked by its own shell."""

import os
import subprocess
import sys

import pytest
from _tmux import need, terminal
from conftest import child_env

import sysvmq

BIN = os.path.dirname(sys.executable)
SYSVMQ = os.path.join(BIN, "sysvmq")
ENV = child_env(PATH=BIN + os.pathsep + os.environ.get("PATH", ""))


def script(shell):
    out = subprocess.run(
        [SYSVMQ, "completion", shell], capture_output=True, text=True, timeout=30, check=True, env=child_env()
    )
    return out.stdout


def bash_completes(*words):
    """What the bash function offers for `words`, the last one being completed."""
    driver = (
        'source <("$SYSVMQ" completion bash) && complete -p sysvmq\n'
        'COMP_WORDS=("$SYSVMQ" "$@"); COMP_CWORD=$#; _sysvmq; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    out = subprocess.run(
        [need("bash"), "-c", driver, "bash", *words],
        capture_output=True,
        text=True,
        timeout=30,
        env={**ENV, "SYSVMQ": SYSVMQ},
        check=True,
    )
    registered, *offered = out.stdout.splitlines()
    assert registered == "complete -F _sysvmq sysvmq" and out.stderr == ""
    return [word for word in offered if word]


def fish_completes(line):
    """What fish offers for the command line `line` (`complete -C`), without descriptions."""
    out = subprocess.run(
        [need("fish"), "--no-config", "-c", 'sysvmq completion fish | source; complete -C "$argv[1]"', line],
        capture_output=True,
        text=True,
        timeout=30,
        env=ENV,
        check=True,
    )
    assert out.stderr == ""
    return [entry.split("\t")[0] for entry in out.stdout.splitlines()]


@pytest.fixture
def keyed(make_queue, free_key):
    """A queue with a key, and a private one (whose key, 0, is never offered)."""
    return make_queue(free_key, create=True), make_queue(sysvmq.IPC_PRIVATE)


SUBCOMMANDS = ["ls", "stat", "send", "receive", "rm", "limits", "demo", "bench", "watch", "completion"]


def test_bash_subcommands_and_options():
    assert bash_completes("") == [*SUBCOMMANDS, "-h", "--help", "--version"]
    assert bash_completes("re") == ["receive"]
    assert bash_completes("watch", "--i") == ["--id", "--interval"]
    assert bash_completes("--version") == ["--version"]
    assert bash_completes("receive", "--type", "") == []  # a value of the user's own
    assert "--nowait" in bash_completes("send", "0x1", "--t", "--no")
    assert bash_completes("completion", "") == ["bash", "zsh", "fish"]
    assert bash_completes("completion", "z") == ["zsh"]


def test_bash_queue_keys_and_ids(keyed):
    with_key, private = keyed
    assert bash_completes("stat", "") == [f"{with_key.key:#010x}"]
    assert sorted(bash_completes("receive", "--id", "")) == sorted([str(with_key.id), str(private.id)])
    assert bash_completes("rm", "--id", str(private.id), "0x") == [f"{with_key.key:#010x}"]
    assert bash_completes("limits", "") == []  # takes no queue


def test_fish_subcommands_options_and_keys(keyed):
    with_key, private = keyed
    assert fish_completes("sysvmq rec") == ["receive"]
    assert fish_completes("sysvmq watch --i") == ["--id", "--interval"]
    assert fish_completes("sysvmq stat ")[0] == f"{with_key.key:#010x}"
    assert sorted(fish_completes("sysvmq stat --id ")) == sorted([str(with_key.id), str(private.id)])
    assert fish_completes("sysvmq receive --timeout ") == []
    assert set(SUBCOMMANDS) <= set(fish_completes("sysvmq "))
    assert sorted(fish_completes("sysvmq completion ")) == ["bash", "fish", "zsh"]


def test_zsh_completes_in_a_real_terminal(keyed, tmp_path):
    with_key, _ = keyed
    need("zsh")
    (tmp_path / "_sysvmq").write_text(script("zsh"))
    rc = tmp_path / ".zshrc"
    rc.write_text(
        f"PS1='> '\nPATH={BIN}:$PATH\nautoload -U compinit && compinit -u -D\nsource {tmp_path / '_sysvmq'}\n"
    )
    with terminal(f"ZDOTDIR={tmp_path} exec {need('zsh')} -i") as term:
        term.wait_for(lambda s: s.rstrip().endswith(">"))
        term.keys("sysvmq rece", "Tab")
        term.wait_for(lambda s: "> sysvmq receive" in s)
        term.keys("--nowa", "Tab")
        term.wait_for(lambda s: "sysvmq receive --nowait" in s)
        term.keys("C-u", "sysvmq stat ", "Tab")
        term.wait_for(lambda s: f"> sysvmq stat {with_key.key:#010x}" in s)
        term.keys("C-u", "sysvmq watch --inte", "Tab")
        term.wait_for(lambda s: "> sysvmq watch --interval" in s)
        term.keys("C-u", "sysvmq completion f", "Tab")
        term.wait_for(lambda s: "> sysvmq completion fish" in s)


def test_every_option_of_every_command_is_in_each_script():
    from sysvmq.tools import cli

    _, commands = cli.build_parser()
    texts = {shell: script(shell) for shell in ("bash", "zsh", "fish")}
    for name, parser in commands.items():
        for action in parser._actions:
            for option in action.option_strings:
                assert option in texts["bash"] and option in texts["zsh"], (name, option)
                flag = f"-l {option[2:]}" if option.startswith("--") else f"-s {option[1:]}"
                assert f"__sysvmq_using {name}' {flag}" in texts["fish"], (name, option)
