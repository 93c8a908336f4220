"""The README's Python examples run as written.

Which blocks run is decided in one place, docs/readme_examples.py, which the docs'
doctest build (docs/conf.py) uses too.
"""

import os
import sys

from conftest import ROOT

import sysvmq

sys.path.insert(0, os.path.join(ROOT, "docs"))
from readme_examples import KEY, python_blocks, runnable_blocks


def readme() -> str:
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read()


def test_readme_examples_run():
    blocks = runnable_blocks(readme())
    assert len(blocks) >= 2
    if int(KEY, 16) in {q.key for q in sysvmq.queues()}:
        import pytest

        pytest.skip("another program uses key 0xdeadc0de on this machine")
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["msg"] == sysvmq.Message(2, b"text is sent as UTF-8")


def test_readme_queue_example_runs():
    blocks = [b for b in python_blocks(readme()) if "sysvmq.Queue(0xC0FFEE" in b]
    assert len(blocks) == 1
    if 0xC0FFEE in {q.key for q in sysvmq.queues()}:
        import pytest

        pytest.skip("another program uses key 0xc0ffee on this machine")
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert namespace["job"] == {"job": 1, "args": [1, 2]}
    assert 0xC0FFEE not in {q.key for q in sysvmq.queues()}
