"""Which stable ABI a build targets (build_sysvmq.limited_api), and that the installed module
and wheel are what that decision says for the interpreter running the suite."""

import importlib.metadata
import importlib.util
import os
import sys
import sysconfig

import pytest
from conftest import ROOT

import sysvmq._sysvmq_cffi


def build_module():
    spec = importlib.util.spec_from_file_location("build_sysvmq", os.path.join(ROOT, "build_sysvmq.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_sysvmq = build_module()


@pytest.mark.parametrize(
    "implementation, version, free_threaded, debug, expected",
    [
        ("cpython", (3, 9), False, False, "cp39"),
        ("cpython", (3, 13), False, False, "cp39"),
        ("cpython", (3, 14), False, False, "cp39"),
        ("cpython", (3, 15), False, False, "cp39"),
        # No stable ABI for free-threading before 3.15: setuptools refuses --py-limited-api.
        ("cpython", (3, 13), True, False, None),
        ("cpython", (3, 14), True, False, None),
        # abi3t begins at 3.15: a cp315-abi3.abi3t wheel.
        ("cpython", (3, 15), True, False, "cp315"),
        ("cpython", (3, 16), True, False, "cp315"),
        # A debug build's module is not compiled for the stable ABI (cffi leaves Py_LIMITED_API out).
        ("cpython", (3, 14), False, True, None),
        ("pypy", (3, 11), False, False, None),
        ("pypy", (3, 9), False, False, None),
    ],
)
def test_the_stable_abi_each_interpreter_builds_for(implementation, version, free_threaded, debug, expected):
    assert build_sysvmq.limited_api(implementation, version, free_threaded, debug) == expected


def this_interpreter():
    stable = build_sysvmq.this_interpreters_limited_api()
    facts = f"{sys.implementation.name} {sys.version_info[:2]}, Py_GIL_DISABLED={sysconfig.get_config_var('Py_GIL_DISABLED')}"
    return stable, facts


def test_the_compiled_module_is_built_for_the_abi_decided():
    stable, facts = this_interpreter()
    # _sysvmq_cffi.abi3.so, .abi3-x86_64-linux-gnu.so (3.15), .abi3t.so; else .cpython-314t-..., .pypy311-...
    name = os.path.basename(sysvmq._sysvmq_cffi.__file__)
    assert name.split(".", 1)[1].startswith("abi3") == (stable is not None), (name, stable, facts)


def test_the_installed_wheel_is_tagged_for_the_abi_decided():
    wheel = importlib.metadata.distribution("sysvmq").read_text("WHEEL")
    if wheel is None:
        pytest.skip("this install recorded no wheel tags")
    tags = {line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")}
    python_abi = {tag.rsplit("-", 1)[0] for tag in tags}
    stable, facts = this_interpreter()
    if stable is None:
        assert not any("abi3" in pair for pair in python_abi), (python_abi, facts)
    elif sysconfig.get_config_var("Py_GIL_DISABLED"):
        assert python_abi == {f"{stable}-abi3", f"{stable}-abi3t"}, (python_abi, facts)
    else:
        assert python_abi == {f"{stable}-abi3"}, (python_abi, facts)
