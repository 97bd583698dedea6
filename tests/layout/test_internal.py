"""cdefs/iommufd_test.h agrees with drivers/iommu/iommufd/iommufd_test.h of the 7.3 source.

Runs tools/layoutcheck_internal.py, which downloads what it needs itself (linux-libc-dev and the
linux-source-7.3 .deb, through tools/debpkg.py into ``$XDG_CACHE_HOME/pyvfio``, shared with the
VM lane), so it passes from an empty cache.  Without gcc or the package store it skips, saying
why, or fails with PYVFIO_REQUIRE_LAYOUT_CHECK=1 (CI).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import layoutcheck
import layoutcheck_internal

from pyvfio import _ffi_build
from tests.layout.test_cdefs import unavailable


def _check(items: list[layoutcheck.Item] | None = None) -> layoutcheck.Report:
    try:
        return layoutcheck_internal.check(download=True, items=items)
    except layoutcheck.UnavailableError as exc:
        reason = str(exc)
    unavailable(reason)


def test_iommufd_test_h_matches_the_source() -> None:
    report = _check()
    print("\n".join(report.lines()))
    assert not report.differences, "\n".join(report.lines())
    assert report.checked["struct"] == 7 and report.checked["ioctl"] == 1


def test_internal_check_finds_a_broken_field() -> None:
    text = _ffi_build.cdef_source(("libc.h", "iommufd_test.h"))
    old = "uint64_t page_size;\n            uint64_t uptr;"
    assert text.count(old) == 1
    text = text.replace(old, "uint64_t uptr;\n            uint64_t page_size;")
    items = layoutcheck.collect(layoutcheck.uapi_ffi(text), {}, {})
    found = "\n".join(_check(items).differences)
    assert re.search(r"field struct iommu_test_cmd\.dirty\.uptr: header 48 8, cdefs 40 8", found)
