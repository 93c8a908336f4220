"""The README's Python examples that run: one rule for the docs' doctest build
(docs/conf.py) and for the test suite (tests/test_readme.py).

The ```python blocks that use the key 0xDEADC0DE are the Ruby gem's example and its
sequel: they run in order, in one namespace, and remove their queue. The sysvmq.Queue
example runs on its own key, 0xC0FFEE, and removes its queue too. Any other block is read,
not run.
"""

import re
from typing import List

KEY = "0xDEADC0DE"
QUEUE_EXAMPLE = "sysvmq.Queue(0xC0FFEE"


def python_blocks(markdown: str) -> List[str]:
    """Every ```python block of `markdown`, in order."""
    return re.findall(r"```python\n(.*?)```", markdown, re.S)


def runs(block: str) -> bool:
    """Whether a README block is one of the examples that run."""
    return KEY in block


def runnable_blocks(markdown: str) -> List[str]:
    """The README's examples that run, in order."""
    return [block for block in python_blocks(markdown) if runs(block)]


def doctested(block: str) -> bool:
    """Whether the docs' doctest build runs a README block: those above, and the sysvmq.Queue one."""
    return runs(block) or QUEUE_EXAMPLE in block
