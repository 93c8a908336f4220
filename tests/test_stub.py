"""The type stub of the compiled module names exactly what the compiled module has."""

import ast
import os

from conftest import ROOT

from sysvmq._sysvmq_cffi import ffi, lib


def stub_names(class_name: str) -> set:
    with open(os.path.join(ROOT, "sysvmq", "_sysvmq_cffi.pyi")) as f:
        tree = ast.parse(f.read())
    body = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == class_name).body
    names = {node.name for node in body if isinstance(node, ast.FunctionDef)}
    return names | {
        node.target.id for node in body if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }


def test_the_stub_and_lib_name_the_same_things():
    assert stub_names("_Lib") == {name for name in dir(lib) if not name.startswith("__")}


def test_every_ffi_name_in_the_stub_exists():
    assert {name for name in stub_names("_FFI") if not hasattr(ffi, name)} == set()
