"""Check cdefs/ of kernel-internal headers against the Linux source tree (iommufd_test.h).

``cdefs/iommufd_test.h`` describes drivers/iommu/iommufd/iommufd_test.h, which linux-libc-dev does
not ship, so tools/layoutcheck.py leaves it out.  This compares it with the header from Debian's
``linux-source-7.3`` (cdefs follow the newest kernel, which the VM lane also builds; it is
downloaded into the cache shared with the lane unless a .deb is cached already; the tarball is
only read for that one file), with layoutcheck's probe: every struct, field, constant and
``IOMMU_TEST_CMD`` itself must be present with the same layout and value.

Usage::

    python3 tools/layoutcheck_internal.py          # exit 1 on a difference, 2 if it cannot run
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import debpkg
import layoutcheck
from layoutcheck import Report, UnavailableError

from pyvfio import _ffi_build, uapi

SOURCE_PACKAGE = "linux-source-7.3"
MEMBER = "drivers/iommu/iommufd/iommufd_test.h"


def source_header(download: bool = True) -> tuple[str, Path]:
    """Return the source version and a directory holding iommufd_test.h from linux-source-7.3.

    Raises:
        UnavailableError: the .deb is not cached (with ``download=False``) or cannot be fetched.
    """
    cached = sorted((debpkg.cache_root() / "debs").glob(f"{SOURCE_PACKAGE}_*.deb"))
    try:
        deb = cached[-1] if cached else None
        if deb is None and download:
            deb = debpkg.download(layoutcheck.RELEASES["newest"], SOURCE_PACKAGE)
    except debpkg.DebpkgError as exc:
        raise UnavailableError(f"{SOURCE_PACKAGE}: {exc}") from exc
    if deb is None:
        raise UnavailableError(f"{SOURCE_PACKAGE} .deb not in the cache (download=False)")
    dest = debpkg.cache_root() / "headers" / f"{deb.stem}-internal"
    header = dest / "iommufd_test.h"
    if not header.exists():
        dest.mkdir(parents=True, exist_ok=True)
        tarball = f"./usr/src/{SOURCE_PACKAGE}.tar.xz"
        # one temporary file per process: two runs extracting at once (parallel test runs share
        # the cache) each rename a complete file into place, never each other's half
        part = header.with_name(f"{header.name}.{os.getpid()}.part")
        cmd = (f"dpkg-deb --fsys-tarfile {shlex.quote(str(deb))} | tar -xO {tarball} | "
               f"tar -xJO {SOURCE_PACKAGE}/{MEMBER} > {shlex.quote(str(part))}")
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True,
                              text=True, timeout=600, check=False)
        if proc.returncode:
            part.unlink(missing_ok=True)
            raise UnavailableError(f"cannot extract {MEMBER} from {deb.name}: {proc.stderr}")
        os.replace(part, header)
    return deb.name.split("_")[1], dest


def internal_items() -> list[layoutcheck.Item]:
    """The probe items of cdefs/iommufd_test.h and of ``uapi.TEST_IOCTLS``."""
    text = _ffi_build.cdef_source(("libc.h", *_ffi_build.KERNEL_INTERNAL))
    ioctls = {name: int(value) for name, value in uapi.TEST_IOCTLS.items()}
    return layoutcheck.collect(layoutcheck.uapi_ffi(text), ioctls, {})


def check(download: bool = True, items: list[layoutcheck.Item] | None = None) -> Report:
    """Compare ``items`` (default: cdefs/iommufd_test.h) with the 7.3 source header; anything
    absent there is a difference.

    Raises:
        UnavailableError: no gcc, no linux-libc-dev, or no linux-source .deb.
    """
    items = internal_items() if items is None else items
    version, extra = source_header(download)
    _, include = layoutcheck.headers("newest")  # iommufd_test.h includes <linux/iommufd.h>
    answers, absent = layoutcheck.probe(items, include, ("linux/types.h", "iommufd_test.h"),
                                        extra)
    report = Report(f"{SOURCE_PACKAGE} {version}: {MEMBER}", newest=True)
    return layoutcheck.compare(items, answers, absent, report)


def main() -> int:
    """Print the report; 1 on a difference, 2 when the check cannot run."""
    try:
        report = check()
    except UnavailableError as exc:
        print(f"layoutcheck_internal: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return int(bool(report.differences))


if __name__ == "__main__":
    sys.exit(main())
