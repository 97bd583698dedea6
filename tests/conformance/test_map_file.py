"""IOMMU_IOAS_MAP_FILE on a memfd (device DMA lands in the file) and IOMMU_IOAS_CHANGE_PROCESS.

Specification: Linux 7.3 drivers/iommu/iommufd/ioas.c (iommufd_ioas_map_file,
iommufd_ioas_change_process), io_pagetable.c:iopt_map_file_pages, pages.c (memfd pinning), and
tools/testing/selftests/iommu/iommufd.c (test_basic_file, change_process.basic).  Both came with
Linux 6.13: 6.12 answers ENOTTY and the tests skip.  The lone edu is opened in iommufd mode, so
its domain pins file pages at map time.
"""

from __future__ import annotations

import errno
import mmap
import os
from collections.abc import Iterator

import pytest

from pyvfio import uapi
from pyvfio._ffi import new
from pyvfio.device import Device
from pyvfio.dma import allocate
from pyvfio.edu import CMD_IRQ, CMD_START, CMD_TO_RAM, DMA_IRQ, DMA_WINDOW, EduDriver
from pyvfio.ioas import IOAS
from tests.conformance.iommufd_helpers import FIXED, RW, U64_MAX, Session, iommufd_session
from tests.conformance.mock_helpers import since
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

PAGE = mmap.PAGESIZE
IOVA = 0x200000


@pytest.fixture
def memfd() -> Iterator[int]:
    fd = os.memfd_create("pyvfio-map-file")
    os.ftruncate(fd, 2 * PAGE)
    try:
        yield fd
    finally:
        os.close(fd)


def _ioas(dev: Device) -> IOAS:
    assert isinstance(dev.dma, IOAS)
    return dev.dma


def test_map_file_device_writes_the_file(host: Host, edu_iommufd: Device, memfd: int) -> None:
    """edu's DMA to a file-mapped IOVA lands in the memfd's pages (read back with pread)."""
    ioas = _ioas(edu_iommufd)
    assert since(host, "6.13", ioas.map_file, memfd, 0, 2 * PAGE, IOVA) == IOVA
    with EduDriver(edu_iommufd) as edu:
        data = bytes(range(256)) * 4
        edu.dma_to_device(data)
        for name, value in (("dma_src", DMA_WINDOW), ("dma_dst", IOVA + PAGE),
                            ("dma_count", len(data))):
            edu.regs.write(name, value)
        edu.regs.write("dma_cmd", CMD_START | CMD_IRQ | CMD_TO_RAM)
        edu._wait_irq("dma", DMA_IRQ)
        assert os.pread(memfd, len(data), PAGE) == data
    assert ioas.unmap(IOVA, 2 * PAGE) == 2 * PAGE


def test_map_file_checks(host: Host, edu_iommufd: Device, memfd: int) -> None:
    """test_basic_file: a range past the memfd's end or a truncated memfd cannot be pinned
    (EINVAL), length 0 is EINVAL, a closed fd EBADF."""
    ioas = _ioas(edu_iommufd)
    since(host, "6.13", ioas.map_file, memfd, 0, PAGE, IOVA)
    ioas.unmap(IOVA, PAGE)
    expect_errno(errno.EINVAL, ioas.map_file, memfd, 0, 2 * PAGE + 1, IOVA)
    arg = new("struct iommu_ioas_map_file *", flags=6, ioas_id=ioas.id, fd=memfd, length=0)
    expect_errno(errno.EINVAL, ioas.iommufd.call, uapi.IOMMU_IOAS_MAP_FILE, arg)
    os.ftruncate(memfd, 0)
    expect_errno(errno.EINVAL, ioas.map_file, memfd, 0, PAGE, IOVA)
    closed = os.memfd_create("pyvfio-closed")
    os.close(closed)
    expect_errno(errno.EBADF, ioas.map_file, closed, 0, PAGE, IOVA)


def _map_file(s: Session, fd: int, ioas: int, memfd: int, start: int, length: int,
              iova: int | None = None) -> int:
    """IOMMU_IOAS_MAP_FILE, read+write (FIXED_IOVA when ``iova`` is given); return the IOVA."""
    flags = RW | (FIXED if iova is not None else 0)
    arg = new("struct iommu_ioas_map_file *", flags=flags, ioas_id=ioas, fd=memfd, start=start,
              length=length, iova=iova or 0)
    s.k.ioctl(fd, uapi.IOMMU_IOAS_MAP_FILE, arg)
    return int(arg.iova)


def test_map_file_pins_only_for_a_domain(host: Host, memfd: int) -> None:
    """io_pagetable.c:iopt_map_file_pages: without a domain nothing looks at the file's pages, so
    a range past the memfd's end maps; the first domain must pin it and cannot
    (iopt_table_add_domain -> memfd_pin_folios: HWPT_ALLOC EINVAL); unmapped, the domain comes."""
    with iommufd_session(host) as s:
        fd, ioas, _, dev_id = s.bound_edu()
        since(host, "6.13", _map_file, s, fd, ioas, memfd, PAGE, 16 * PAGE, IOVA)
        expect_errno(errno.EINVAL, s.hwpt, fd, dev_id, ioas)
        assert s.unmap(fd, ioas, IOVA, 16 * PAGE) == 16 * PAGE
        expect_ok(s.destroy, fd, s.hwpt(fd, dev_id, ioas))


def test_map_file_iova_follows_the_file_offset(host: Host, memfd: int) -> None:
    """io_pagetable.c:iopt_alloc_area_pages: a kernel-chosen IOVA keeps the page offset (and the
    alignment) of the file offset, not of a user address."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        iova = since(host, "6.13", _map_file, s, fd, ioas, memfd, 0x800, PAGE)
        assert iova % PAGE == 0x800 and iova % 0x1000 == 0x800


def test_map_file_huge_length_einval(host: Host, memfd: int) -> None:
    """pages.c:iopt_alloc_pages: a length above SIZE_MAX - PAGE_SIZE -> EINVAL (after the fd is
    looked up: a closed fd is EBADF first)."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        since(host, "6.13", _map_file, s, fd, ioas, memfd, 0, PAGE)
        huge = U64_MAX - PAGE + 1
        expect_errno(errno.EINVAL, _map_file, s, fd, ioas, memfd, 0, huge)
        closed = os.memfd_create("pyvfio-closed")
        os.close(closed)
        expect_errno(errno.EBADF, _map_file, s, fd, ioas, closed, 0, huge)


def test_change_process(host: Host, edu_iommufd: Device, memfd: int) -> None:
    """change_process.basic: EINVAL while a plain (user memory) mapping exists; with only file
    mappings the accounting moves to the caller; a non-zero __reserved is EOPNOTSUPP."""
    ioas = _ioas(edu_iommufd)
    fd = ioas.iommufd
    since(host, "6.13", fd.change_process)
    buf = allocate(PAGE)
    m = ioas.map(buf, IOVA)
    expect_errno(errno.EINVAL, fd.change_process)
    m.close()
    ioas.map_file(memfd, 0, PAGE, IOVA)
    expect_ok(fd.change_process)
    arg = new("struct iommu_ioas_change_process *", __reserved=1)
    expect_errno(errno.EOPNOTSUPP, fd.call, uapi.IOMMU_IOAS_CHANGE_PROCESS, arg)
    ioas.unmap(IOVA, PAGE)


def test_noiommu_get_pa_under_an_iommu(host: Host, edu_iommufd: Device) -> None:
    """IOAS_NOIOMMU_GET_PA (7.3) is for noiommu domains: behind a real IOMMU a mapped IOVA is
    EOPNOTSUPP, an unmapped one ENOENT; flags -> EOPNOTSUPP, length 0 -> EINVAL."""
    ioas = _ioas(edu_iommufd)
    buf = allocate(PAGE)
    m = ioas.map(buf, IOVA)
    expect_errno(errno.EOPNOTSUPP, since, host, "7.3", ioas.noiommu_get_pa, IOVA, PAGE)
    expect_errno(errno.ENOENT, ioas.noiommu_get_pa, IOVA + PAGE, PAGE)
    for fields in ({"flags": 1, "length": PAGE}, {"length": 0}):
        arg = new("struct iommu_ioas_noiommu_get_pa *", ioas_id=ioas.id, iova=IOVA, **fields)
        want = errno.EOPNOTSUPP if "flags" in fields else errno.EINVAL
        expect_errno(want, ioas.iommufd.call, uapi.IOMMU_IOAS_NOIOMMU_GET_PA, arg)
    m.close()
