# The only reason for this file: cffi generates pyvfio/_vfio_cffi.py (out-of-line ABI mode, pure
# Python, no compiler) from cdefs/ at build time.  Everything else lives in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["pyvfio/_ffi_build.py:ffibuilder"])
