"""A real terminal for tests: a tmux server on a private socket, always killed afterwards."""

import os
import shutil
import subprocess
import time
import uuid
from contextlib import contextmanager
from typing import Callable, Iterator

import pytest
from conftest import child_env


def need(program: str) -> str:
    """The path of `program`; skip without it, unless SYSVMQ_CI is set (CI installs it: fail)."""
    path = shutil.which(program)
    if path is None:
        message = f"{program} is not installed (apt-get install {program})"
        if os.environ.get("SYSVMQ_CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


class Terminal:
    """One tmux window of a fixed size running one command."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def tmux(self, *args: str) -> str:
        out = subprocess.run(
            [need("tmux"), "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            env=child_env(),
        )
        return out.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p")

    def flag(self, name: str) -> str:
        return self.tmux("display-message", "-p", "#{" + name + "}").strip()

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "--", *keys)

    def wait_for(self, test: Callable[[str], bool], within: float = 20.0) -> str:
        """The screen, once `test(screen)` holds; fails with the last screen after `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            shown = self.screen()
            if test(shown):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never matched; it shows:\n{shown}")
            time.sleep(0.05)


@contextmanager
def terminal(command: str, columns: int = 100, lines: int = 30) -> Iterator[Terminal]:
    """`command` (a shell line) in a new tmux window, UTF-8, `columns` x `lines`."""
    term = Terminal(f"sysvmq-test-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    env = child_env(LC_ALL="C.UTF-8")
    size = ["-x", str(columns), "-y", str(lines)]
    subprocess.run(
        [need("tmux"), "-L", term.socket, "-f", "/dev/null", "-u", "new-session", "-d", *size, command],
        env=env,
        check=True,
        timeout=30,
    )
    try:
        yield term
    finally:
        subprocess.run(
            [need("tmux"), "-L", term.socket, "kill-server"], capture_output=True, timeout=30, env=child_env()
        )
