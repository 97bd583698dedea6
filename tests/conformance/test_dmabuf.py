"""dma-bufs of a vfio-pci BAR (VFIO_DEVICE_FEATURE_DMA_BUF) mapped into an IOAS with MAP_FILE.

Specification: Linux 7.3 drivers/vfio/pci/vfio_pci_dmabuf.c (vfio_pci_core_feature_dma_buf,
validate_dmabuf_input, vfio_pci_dma_buf_iommufd_map) and drivers/iommu/iommufd/pages.c
(iopt_alloc_dmabuf_pages).  Tried on QEMU's edu (BAR0, 1 MiB).  Linux 6.19+; 6.12 answers ENOTTY
and the tests skip.
"""

from __future__ import annotations

import errno
import mmap
import struct

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from pyvfio.device import Device
from pyvfio.dmabuf import DmaBuf
from pyvfio.ioas import IOAS
from tests.conformance.mock_helpers import since
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

PAGE = mmap.PAGESIZE
IOVA = 0x300000
TOP = (1 << 64) - PAGE
PCI_COMMAND, MEMORY = 4, 0x2


def _ioas(dev: Device) -> IOAS:
    assert isinstance(dev.dma, IOAS)
    return dev.dma


def test_bar_dmabuf_maps_into_ioas(host: Host, edu_iommufd: Device) -> None:
    """One page of BAR0 as a dma-buf, mapped at a fixed IOVA and unmapped again; a range past
    the dma-buf's end is EINVAL."""
    buf = since(host, "6.19", DmaBuf, edu_iommufd, 0, [(0, PAGE)])
    with buf:
        ioas = _ioas(edu_iommufd)
        assert ioas.map_file(buf.fileno(), 0, PAGE, IOVA) == IOVA
        assert ioas.unmap(IOVA, PAGE) == PAGE
        expect_errno(errno.EINVAL, ioas.map_file, buf.fileno(), 0, 2 * PAGE, IOVA)


def test_dmabuf_export_checks(host: Host, edu_iommufd: Device) -> None:
    """validate_dmabuf_input and friends: a BAR edu lacks -> ENODEV; unaligned or empty ranges,
    nr_ranges 0 or flags -> EINVAL; SET is EINVAL (GET only)."""
    since(host, "6.19", DmaBuf, edu_iommufd, 0, [(0, PAGE)]).close()
    expect_errno(errno.ENODEV, DmaBuf, edu_iommufd, 1, [(0, PAGE)])
    expect_errno(errno.EINVAL, DmaBuf, edu_iommufd, 0, [(100, PAGE)])
    expect_errno(errno.EINVAL, DmaBuf, edu_iommufd, 0, [(0, 0)])
    expect_errno(errno.EINVAL, DmaBuf, edu_iommufd, 0, [(0, 2 << 20)])  # past the 1 MiB BAR
    for flags, nr in ((0, 0), (1, 1)):
        payload = struct.pack("<IIIIQQ", 0, 2, flags, nr, 0, PAGE)
        arg = new("struct vfio_device_feature *", len(payload),
                  flags=C.VFIO_DEVICE_FEATURE_DMA_BUF | C.VFIO_DEVICE_FEATURE_GET)
        ffi.memmove(arg.data, payload, len(payload))
        expect_errno(errno.EINVAL, edu_iommufd._call, uapi.VFIO_DEVICE_FEATURE, arg)
    expect_errno(errno.EINVAL, edu_iommufd.feature, C.VFIO_DEVICE_FEATURE_DMA_BUF,
                 C.VFIO_DEVICE_FEATURE_SET, 40)


def test_dmabuf_range_wrap_eoverflow(host: Host, edu_iommufd: Device) -> None:
    """vfio_pci_core_fill_phys_vec: a range whose BAR address + offset (+ length) wraps past
    2^64 -> EOVERFLOW, in any position; validate_dmabuf_input checks every range first, so
    an unaligned range after it is EINVAL, as is a total length with bit 63
    (DMA_IOVA_USE_SWIOTLB)."""
    since(host, "6.19", DmaBuf, edu_iommufd, 0, [(0, PAGE)]).close()
    expect_errno(errno.EOVERFLOW, DmaBuf, edu_iommufd, 0, [(TOP, PAGE)])
    expect_errno(errno.EOVERFLOW, DmaBuf, edu_iommufd, 0, [(0, PAGE), (TOP, PAGE)])
    expect_errno(errno.EINVAL, DmaBuf, edu_iommufd, 0, [(TOP, PAGE), (100, PAGE)])
    expect_errno(errno.EINVAL, DmaBuf, edu_iommufd, 0, [(0, 1 << 63)])


def test_multi_range_dmabuf_not_mappable(host: Host, edu_iommufd: Device) -> None:
    """vfio_pci_dma_buf_iommufd_map: iommufd takes single-range dma-bufs only (EOPNOTSUPP)."""
    buf = since(host, "6.19", DmaBuf, edu_iommufd, 0, [(0, PAGE), (2 * PAGE, PAGE)])
    with buf:
        assert buf.size == 2 * PAGE
        expect_errno(errno.EOPNOTSUPP, _ioas(edu_iommufd).map_file, buf.fileno(), 0, PAGE, IOVA)


def test_dmabuf_revoked_without_memory_decoding(host: Host, edu_iommufd: Device) -> None:
    """The dma-buf is revoked while PCI_COMMAND_MEMORY is off: MAP_FILE answers ENODEV."""
    buf = since(host, "6.19", DmaBuf, edu_iommufd, 0, [(0, PAGE)])
    config = C.VFIO_PCI_CONFIG_REGION_INDEX
    cmd = struct.unpack("<H", edu_iommufd.read(config, PCI_COMMAND, 2))[0]
    with buf:
        edu_iommufd.write(config, PCI_COMMAND, struct.pack("<H", cmd & ~MEMORY))
        try:
            expect_errno(errno.ENODEV, _ioas(edu_iommufd).map_file, buf.fileno(), 0, PAGE, IOVA)
        finally:
            edu_iommufd.write(config, PCI_COMMAND, struct.pack("<H", cmd))
        expect_ok(_ioas(edu_iommufd).map_file, buf.fileno(), 0, PAGE, IOVA)
        _ioas(edu_iommufd).unmap(IOVA, PAGE)
