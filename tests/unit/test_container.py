"""Container on the fake kernel: API version, IOMMU choice, info caps, DMA mapping, dirty pages."""

from __future__ import annotations

import errno
import gc
import logging
from typing import Any

import pytest

from pyvfio import uapi
from pyvfio.container import Container
from pyvfio.dma import PAGE_SIZE, Mapping, allocate
from pyvfio.errors import UnsupportedAPIError
from pyvfio.fake import FakeKernel, standard_host
from pyvfio.group import Group
from pyvfio.testing import fail_nth_sweep
from tests.conftest import Host
from tests.helpers import expect_errno
from tests.unit.vfio_env import Opened

IOVA = 0x100000




def test_container_api_version_and_extensions(host: Host) -> None:
    with Container(host.kernel) as c:
        assert c.api_version() == 0
        assert c.check_extension(uapi.Extension.TYPE1v2_IOMMU)
        assert not c.check_extension(uapi.Extension.SPAPR_TCE_IOMMU)
        assert "/dev/vfio/vfio" in repr(c) and c.fileno() >= 0


def test_container_close_idempotent_and_closed(host: Host) -> None:
    c = Container(host.kernel)
    c.close()
    c.close()
    assert c.closed
    with pytest.raises(ValueError, match="closed"):
        c.api_version()


def test_container_forgotten_warns_and_closes(host: Host) -> None:
    c = Container(host.kernel)
    with pytest.warns(ResourceWarning, match="unclosed"):
        del c
        gc.collect()


def test_check_extension_bad_arg_typeerror(host: Host) -> None:
    with Container(host.kernel) as c, pytest.raises(TypeError, match="extension"):
        c.check_extension("type1")  # type: ignore[arg-type]


def test_set_iommu_without_group_einval(host: Host) -> None:
    with Container(host.kernel) as c:
        expect_errno(errno.EINVAL, c.set_iommu, uapi.IOMMUType.TYPE1v2)
        assert c.iommu_type is None


def test_set_iommu_auto_prefers_type1v2(host: Host) -> None:
    with Container(host.kernel) as c, Group(host.edu_group, kernel=host.kernel) as g:
        g.set_container(c)
        assert c.set_iommu() == uapi.IOMMUType.TYPE1v2 == c.iommu_type
        expect_errno(errno.EINVAL, c.set_iommu)


def test_iommu_info_decodes_caps(edu: Opened) -> None:
    info = edu.container.iommu_info()
    assert info.flags & uapi.IOMMUInfoFlag.PGSIZES
    assert info.min_page_size == PAGE_SIZE
    assert info.iova_ranges and any(IOVA in r for r in info.iova_ranges)
    assert info.dma_avail is not None and info.dma_avail > 0
    assert info.migration is not None and info.migration.page_sizes & PAGE_SIZE
    assert edu.container.iova_ranges() == info.iova_ranges


def test_map_unmap_roundtrip(edu: Opened) -> None:
    buf = allocate(2 * PAGE_SIZE)
    m = edu.container.map(buf, IOVA)
    assert isinstance(m, Mapping) and (m.iova, m.size) == (IOVA, 2 * PAGE_SIZE)
    assert m.buffer is buf and not m.closed
    expect_errno(errno.EEXIST, edu.container.map, buf, IOVA)
    expect_errno(errno.EINVAL, edu.container.unmap, IOVA, PAGE_SIZE)  # would split it
    assert edu.container.unmap(0, PAGE_SIZE) == 0  # nothing there: type1 says 0
    m.close()
    m.close()
    assert m.closed


def test_map_decrements_dma_avail(edu: Opened) -> None:
    before = edu.container.iommu_info().dma_avail
    with edu.container.map(allocate(PAGE_SIZE), IOVA):
        assert edu.container.iommu_info().dma_avail == (before or 0) - 1
    assert edu.container.iommu_info().dma_avail == before


def test_unmap_all_releases_mappings(edu: Opened) -> None:
    a = edu.container.map(allocate(PAGE_SIZE), IOVA)
    b = edu.container.map(allocate(PAGE_SIZE), IOVA + 0x10000, writable=False)
    assert edu.container.unmap_all() == 2 * PAGE_SIZE
    assert a.closed and b.closed


def test_map_bad_arguments_before_syscall(edu: Opened) -> None:
    c = edu.container
    with pytest.raises(ValueError, match="page aligned"):
        c.map(bytearray(100), IOVA)
    with pytest.raises(ValueError, match="readable or writable"):
        c.map(allocate(PAGE_SIZE), IOVA, readable=False, writable=False)
    with pytest.raises(TypeError, match="iova"):
        c.map(allocate(PAGE_SIZE), "0x1000")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="iova"):
        c.map(allocate(PAGE_SIZE), -PAGE_SIZE)
    with pytest.raises(TypeError, match="buffer"):
        c.map(bytes(PAGE_SIZE), IOVA)
    with pytest.raises(ValueError, match="size"):
        c.unmap(IOVA, 0)


def test_map_kernel_error_tracks_nothing(edu: Opened) -> None:
    expect_errno(errno.EINVAL, edu.container.map, allocate(PAGE_SIZE), IOVA + 1)
    assert edu.container.unmap_all() == 0


def test_map_before_set_iommu_einval(host: Host) -> None:
    with Container(host.kernel) as c:
        expect_errno(errno.EINVAL, c.map, allocate(PAGE_SIZE), IOVA)


def test_vaddr_invalidate_and_update(edu: Opened) -> None:
    if not edu.container.check_extension(uapi.Extension.UPDATE_VADDR):
        pytest.skip("no VFIO_UPDATE_VADDR")
    m = edu.container.map(allocate(PAGE_SIZE), IOVA)
    edu.container.invalidate_vaddr(m)
    expect_errno(errno.EINVAL, edu.container.invalidate_vaddr, m)
    new = allocate(PAGE_SIZE)
    edu.container.update_vaddr(m, new)
    assert m.buffer is new
    with pytest.raises(ValueError, match="size"):
        edu.container.update_vaddr(m, allocate(2 * PAGE_SIZE))
    m.close()


def test_dirty_tracking_bitmap(edu: Opened) -> None:
    c = edu.container
    m = c.map(allocate(4 * PAGE_SIZE), IOVA)
    expect_errno(errno.EINVAL, c.dirty_bitmap, IOVA, 4 * PAGE_SIZE, PAGE_SIZE)  # not tracking
    c.start_dirty_tracking()
    bitmap = c.dirty_bitmap(IOVA, 4 * PAGE_SIZE, PAGE_SIZE)
    assert len(bitmap) == 8
    c.stop_dirty_tracking()
    with pytest.raises(ValueError, match="power of two"):
        c.dirty_bitmap(IOVA, PAGE_SIZE, 3000)
    m.close()


def test_container_close_closes_groups_and_mappings(host: Host) -> None:
    c = Container(host.kernel)
    g = Group(host.edu_group, kernel=host.kernel)
    g.set_container(c)
    c.set_iommu()
    d = g.open_device(host.edu)
    m = c.map(allocate(PAGE_SIZE), IOVA)
    c.close()
    assert d.closed and g.closed and m.closed


def _driver_flow(kernel: object, bdf: str, group: int) -> None:
    with Container(kernel) as c, Group(group, kernel=kernel) as g:  # type: ignore[arg-type]
        g.set_container(c)
        c.set_iommu()
        with g.open_device(bdf) as d, c.map(allocate(PAGE_SIZE), IOVA):
            d.region_info(0)
            d.mmap(0).read(0, 4)


def test_fail_nth_sweep_leaks_nothing() -> None:
    """Fail each open/ioctl/mmap of the explicit legacy path in turn: the error surfaces, nothing
    leaks (the same sweep as tests/unit/test_fail_nth.py, over Container + Group by hand)."""
    def flow(k: FakeKernel) -> None:
        _driver_flow(k, k.labels["edu"], k.labels["edu_group"])

    report = fail_nth_sweep(standard_host, flow)
    assert report.points > 8 and report.clean, report


def test_iommu_info_requeries_with_kernel_argsz(edu: Opened) -> None:
    calls = edu.host.kernel.calls  # type: ignore[attr-defined]
    before = len(calls)
    edu.container.iommu_info()
    asked = [c for c in calls[before:] if c.name == "VFIO_IOMMU_GET_INFO"]
    assert len(asked) == 2  # 24 bytes, then the size the kernel asked for


def test_ioctl_logged_at_debug(host: Host, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pyvfio")
    with Container(host.kernel) as c:
        c.api_version()
        with pytest.raises(OSError):
            c.set_iommu(uapi.IOMMUType.TYPE1v2)
    text = caplog.text
    assert "VFIO_GET_API_VERSION fd=" in text and "-> 0" in text
    assert "VFIO_SET_IOMMU fd=" in text
    assert f"errno {errno.EINVAL}" in text


def test_ioctl_logged_once_the_level_drops_to_debug(host: Host,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    # _ioctl.call reads logging's cached answer: a later setLevel must still be seen
    caplog.set_level(logging.INFO, logger="pyvfio")
    with Container(host.kernel) as c:
        c.api_version()
        caplog.set_level(logging.DEBUG, logger="pyvfio")
        c.api_version()
    assert caplog.text.count("VFIO_GET_API_VERSION fd=") == 1


def test_api_version_error_closes_fd(host: Host) -> None:
    host.kernel.inject(uapi.VFIO_GET_API_VERSION, errno.EPERM)  # type: ignore[attr-defined]
    expect_errno(errno.EPERM, Container, host.kernel)  # fd closed again: assert_clean checks


class FutureAPI:
    """The fake kernel, answering VFIO_GET_API_VERSION with 1."""

    def __init__(self, kernel: Any) -> None:
        self._k = kernel

    def __getattr__(self, name: str) -> Any:
        return getattr(self._k, name)

    def ioctl(self, fd: int, request: int, arg: Any = 0) -> int:
        rc = int(self._k.ioctl(fd, request, arg))
        return 1 if request == uapi.VFIO_GET_API_VERSION else rc


def test_unsupported_api_version_raises_and_closes(host: Host) -> None:
    with pytest.raises(UnsupportedAPIError, match="API version 1"):
        Container(FutureAPI(host.kernel))  # type: ignore[arg-type]
