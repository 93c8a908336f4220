from setuptools import setup

setup(cffi_modules=["build_sysvmq.py:ffibuilder"])
