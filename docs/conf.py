"""Sphinx configuration: the README as the front page, a page per concept, the API reference
from the docstrings.

Build (CPython 3.11+, `pip install -e '.[docs]'`), warnings as errors:

    sphinx-build -W --keep-going -b html docs docs/_build/html
    unshare --ipc -- sphinx-build -W --keep-going -b doctest docs docs/_build/doctest

The doctest build runs the pages' {doctest} and {testcode} examples, the docstrings' ``>>>``
examples, and the README's examples (docs/readme_examples.py decides which; tests/test_readme.py
runs them too). After each group of examples, the queues its handles name are removed, even
when an example failed before its own destroy() (docs/example_queues.py).
"""

import os
import sys
from typing import Any, List

from docutils import nodes
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from readme_examples import doctested  # noqa: E402

import sysvmq  # noqa: E402  (the installed package: its compiled module is needed)

project = "sysvmq"
author = "The sysvmq authors"
copyright = "the sysvmq authors"
release = version = sysvmq.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.doctest"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "README.md"]
myst_heading_anchors = 3
myst_enable_extensions = ["deflist"]

html_theme = "alabaster"
html_title = f"sysvmq {release}"

# The public names are those in sysvmq.__all__: a name added there appears with no edit here.
autodoc_default_options = {
    "members": True,
    "undoc-members": True,
    "inherited-members": "tuple, object, BaseException, Exception, OSError, BlockingIOError",
    "special-members": "__version__, __iter__, __aiter__",  # iteration, where a class has it
    "show-inheritance": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_type_aliases = {"Payload": "sysvmq.queue.Payload"}

doctest_test_doctest_blocks = "default"  # the docstrings' >>> examples
doctest_global_setup = "import sysvmq\nfrom example_queues import remove_example_queues"
doctest_global_cleanup = "remove_example_queues(globals())"


def _readme_examples_as_doctests(app: Any, doctree: nodes.document) -> None:
    """Make the front page's runnable ```python blocks (the README's) doctest `testcode`, one group."""
    if app.env.docname != "index":
        return
    for block in doctree.findall(nodes.literal_block):
        if block.get("language") == "python" and doctested(block.astext()):
            block["testnodetype"] = "testcode"
            block["groups"] = ["readme"]
            block["options"] = {}


def _binding_constant_description(app: Any, what: str, name: str, obj: Any, options: Any, lines: List[str]) -> None:
    """A constant sysvmq imports from its binding takes the description written there (sysvmq._binding.c),
    not the docstring of int."""
    module, _, short = name.rpartition(".")
    if what != "data" or module != "sysvmq" or ("", short) in ModuleAnalyzer.for_module("sysvmq").find_attr_docs():
        return
    described = ModuleAnalyzer.for_module("sysvmq._binding.c").find_attr_docs().get(("", short))
    if described:
        lines[:] = described


def _every_public_name_documented(app: Any, env: Any) -> None:
    """A warning (an error under -W) for each name of sysvmq.__all__ the reference lacks."""
    documented = set(env.get_domain("py").objects)
    for name in sysvmq.__all__:
        if f"sysvmq.{name}" not in documented:
            logging.getLogger(__name__).warning("sysvmq.%s is public (sysvmq.__all__) but not documented", name)


def setup(app: Any) -> None:
    app.connect("doctree-read", _readme_examples_as_doctests)
    app.connect("autodoc-process-docstring", _binding_constant_description)
    app.connect("env-check-consistency", _every_public_name_documented)
