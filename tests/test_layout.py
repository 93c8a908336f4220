"""The package's shape: imports go one way, and cdata stays in the binding layer."""

import ast
import os
import pathlib
import re

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "sysvmq")


def modules():
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".").removesuffix(".__init__")
                yield dotted, path


def imports_of(path):
    """The sysvmq modules `path` imports (at any depth of its code)."""
    with open(path) as f:
        tree = ast.parse(f.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sysvmq":
            if node.module in ("sysvmq", "sysvmq.tools"):
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "sysvmq"}
    return found - {"sysvmq._sysvmq_cffi"}


GRAPH = {name: imports_of(path) for name, path in modules()}


def test_no_import_cycle():
    def visit(name, path):
        for dep in GRAPH.get(name, ()):
            assert dep not in path, f"import cycle: {' -> '.join([*path, dep])}"
            visit(dep, [*path, dep])

    for name in GRAPH:
        if name != "sysvmq":  # the package imports its modules; none may import it back
            visit(name, [name])
    # Only the tools, built on top, import the package itself.
    assert not any("sysvmq" in deps for name, deps in GRAPH.items() if not name.startswith("sysvmq.tools"))


def test_the_exceptions_and_the_async_layer_stand_alone():
    assert GRAPH["sysvmq.errors"] == set()
    assert "sysvmq.queue" not in GRAPH["sysvmq.aio"]


def test_the_library_never_imports_its_tools():
    library = {name: deps for name, deps in GRAPH.items() if not name.startswith(("sysvmq.tools", "sysvmq.__main__"))}
    assert not {dep for deps in library.values() for dep in deps if dep.startswith("sysvmq.tools")}


def test_the_closed_flag_is_read_only_through_the_shim():
    """close() sets a handle's flag from any thread at any moment: a plain read of the field
    races with it (undefined behaviour in C, a real race without the GIL), so Python asks
    lib.sysvmq_is_closed, which reads it atomically."""
    reads = []
    for name, path in modules():
        with open(path) as f:
            tree = ast.parse(f.read())
        reads += [
            f"{name}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr == "closed"
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "_h"
        ]
    assert reads == []


def test_only_the_binding_layer_touches_the_compiled_module():
    """cdata stays in sysvmq._binding: every other module calls its functions and the
    handle's methods (the hot paths of sysvmq.queue use the C functions it exports)."""
    touching = {
        name
        for name, path in modules()
        if re.search(r"\bimport\b.*\b(ffi|lib)\b|_sysvmq_cffi", pathlib.Path(path).read_text())
    }
    assert touching and all(name.startswith("sysvmq._binding") for name in touching), touching


def test_messages_are_returned_to_their_queue_in_two_modules_only():
    """The return rule (sysvmq._binding.handle's docstring) is carried out where the C
    entry points that return messages are called: the handle, and the hot paths."""
    returning = re.compile(r"sysvmq_return|return_(held|copy)$")

    def names(path):
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                yield node.id
            elif isinstance(node, ast.Attribute):
                yield node.attr

    calling = {name for name, path in modules() if any(returning.match(used) for used in names(path))}
    assert calling == {"sysvmq._binding.handle", "sysvmq.queue"}
