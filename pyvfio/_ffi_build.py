"""Build the cffi FFI of pyvfio from the C declarations in ``cdefs/``.

Out-of-line ABI mode: ``set_source(..., None)`` makes cffi emit a pure-Python module
(``pyvfio/_vfio_cffi.py``) at build time, so installing and importing pyvfio needs no C compiler
and import does not parse C.  ``setup.py`` runs this through ``cffi_modules``; a source checkout
that was never built falls back to parsing the cdefs in-line (see ``pyvfio/_ffi.py``).
"""

from __future__ import annotations

from pathlib import Path

import cffi

# Order matters: iommufd.h and vfio_zdev.h use the types of vfio.h.  iommufd_test.h (last)
# describes a kernel-internal test header, not part of linux-libc-dev (see UAPI_FILES).
CDEF_FILES = ("libc.h", "vfio.h", "vfio_zdev.h", "iommufd.h", "iommufd_test.h")
KERNEL_INTERNAL = ("iommufd_test.h",)
UAPI_FILES = tuple(name for name in CDEF_FILES if name not in KERNEL_INTERNAL)
MODULE_NAME = "pyvfio._vfio_cffi"


def cdefs_dir() -> Path:
    """Return the directory holding the C declarations (top-level ``cdefs/`` of the source tree)."""
    return Path(__file__).resolve().parent.parent / "cdefs"


def cdef_source(files: tuple[str, ...] = CDEF_FILES) -> str:
    """Return the concatenated declarations of ``files`` (default: all), in load order."""
    return "\n".join((cdefs_dir() / name).read_text() for name in files)


def make_ffi() -> cffi.FFI:
    """Return a cffi FFI with every declaration of ``cdefs/`` loaded."""
    ffi = cffi.FFI()
    ffi.cdef(cdef_source())
    return ffi


ffibuilder = make_ffi()
ffibuilder.set_source(MODULE_NAME, None)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
