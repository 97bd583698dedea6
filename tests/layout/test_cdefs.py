"""cdefs/ and pyvfio.uapi agree with the real kernel headers: tools/layoutcheck.py under pytest.

The check needs gcc and Debian's package store (or linux-libc-dev already in the cache).  Without
them the tests skip, saying why; with PYVFIO_REQUIRE_LAYOUT_CHECK=1 (CI) they fail instead.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import NoReturn

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import layoutcheck

from pyvfio import _ffi_build, uapi

REQUIRED = os.environ.get("PYVFIO_REQUIRE_LAYOUT_CHECK") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip loudly, or fail when the check is required."""
    message = f"LAYOUT CHECK DID NOT RUN: {reason}"
    if REQUIRED:
        pytest.fail(f"{message} (PYVFIO_REQUIRE_LAYOUT_CHECK=1)", pytrace=False)
    pytest.skip(message)


def run_check(release: str, items: list[layoutcheck.Item] | None = None) -> layoutcheck.Report:
    try:
        return layoutcheck.check(release, items)
    except layoutcheck.UnavailableError as exc:
        reason = str(exc)
    unavailable(reason)  # outside the except: no chained traceback in the skip/fail message


@pytest.fixture(scope="module", params=list(layoutcheck.RELEASES))
def report(request: pytest.FixtureRequest) -> layoutcheck.Report:
    return run_check(request.param)


def test_cdefs_match_the_headers(report: layoutcheck.Report) -> None:
    print("\n".join(report.lines()))
    assert not report.differences, "\n".join(report.lines())


def test_every_item_is_checked_or_skipped_as_newer(report: layoutcheck.Report) -> None:
    items = layoutcheck.project_items()
    for kind in ("struct", "const", "ioctl"):
        total = sum(1 for item in items if item.kind == kind)
        skipped = len(report.skipped.get(kind, []))
        changed = len(report.changed) if kind == "const" else 0
        assert report.checked.get(kind, 0) + skipped + changed == total, kind
    if report.newest:
        assert not any(report.skipped.values())
        assert report.checked["ioctl"] == len(uapi.IOCTLS) == 56
    else:  # 6.12: the post-6.12 uAPI is recognised as absent, the rest is checked
        assert "IOMMU_IOAS_MAP_FILE" in report.skipped["ioctl"]
        assert "struct iommu_viommu_alloc" in report.skipped["struct"]
        assert "struct vfio_device_bind_iommufd.token_uuid_ptr" in report.skipped["field"]
        assert "VFIO_DEVICE_GET_INFO" not in report.skipped["ioctl"]


def test_probe_covers_every_declaration() -> None:
    ffi = layoutcheck.uapi_ffi()
    items = layoutcheck.project_items()
    keys = {(item.kind, item.key) for item in items}
    lib = ffi.dlopen(None)
    constants = {name for name in dir(lib) if isinstance(getattr(lib, name), int)}
    assert {key for kind, key in keys if kind == "const"} == constants
    assert {key for kind, key in keys if kind == "struct"} == {
        f"struct {name}" for name in ffi.list_types()[1]
    }
    assert {key for kind, key in keys if kind == "ioctl"} == set(uapi.IOCTLS)
    assert ("field", "struct vfio_eeh_pe_op.err.addr") in keys  # nested, via an anonymous union
    assert ("field", "struct vfio_pci_dependent_device.devid") in keys


def test_check_finds_broken_cdefs() -> None:
    """The check can fail: a wrong field type, a field order and a constant are each caught."""
    text = _ffi_build.cdef_source()
    broken = {
        "uint32_t index;\n    uint32_t count;\n};": "uint32_t index;\n    int32_t count;\n};",
        "uint64_t vaddr;\n    uint64_t iova;": "uint64_t iova;\n    uint64_t vaddr;",
        "#define VFIO_REGION_INFO_FLAG_MMAP 0x4": "#define VFIO_REGION_INFO_FLAG_MMAP 0x8",
    }
    for old, new in broken.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    found = "\n".join(run_check("newest", layoutcheck.project_items(text)).differences)
    assert re.search(r"sign struct vfio_irq_info\.count: header 0, cdefs 1", found), found
    assert re.search(r"field struct vfio_iommu_type1_dma_map\.vaddr: header 8 8, cdefs 16 8", found)
    assert re.search(r"const VFIO_REGION_INFO_FLAG_MMAP: header 4 4, cdefs 8", found), found
