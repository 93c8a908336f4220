"""cffi_modules has no pyproject.toml form yet; the stable ABI a wheel is tagged for depends on
the interpreter that builds it (build_sysvmq.limited_api)."""

import os
import sys

from setuptools import setup

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # a PEP 517 build does not put it there
from build_sysvmq import this_interpreters_limited_api

stable_abi = this_interpreters_limited_api()
setup(
    cffi_modules=["build_sysvmq.py:ffibuilder"],
    options={"bdist_wheel": {"py_limited_api": stable_abi}} if stable_abi else {},
)
