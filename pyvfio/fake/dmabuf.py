"""vfio-pci BAR dma-bufs: VFIO_DEVICE_FEATURE_DMA_BUF (Linux 6.19+, vfio_pci_dmabuf.c).

GET with a region (a BAR) and page-aligned ranges of it returns a dma-buf fd as the ioctl's
result; iommufd's IOAS_MAP_FILE takes such a fd when it has exactly one range (pages.c:
iopt_alloc_dmabuf_pages), mapping the BAR for peer-to-peer DMA.  Rules modelled: PROBE/GET only
(vfio_check_feature), ``nr_ranges`` 0 or ``flags`` set -> EINVAL, a region that is no implemented
BAR -> ENODEV, a range array kmalloc cannot hold -> ENOMEM, one not readable -> EFAULT, a range
empty, unaligned or outside the BAR -> EINVAL, one whose end wraps past 2^64 from the BAR's host
address -> EOVERFLOW (after every range passed the EINVAL checks of validate_dmabuf_input).
The fake's dma-buf has no pages behind it: a device DMA through its IOVAs finds nothing (the fake
does not model P2P).
"""

from __future__ import annotations

import errno
import mmap
import os
import struct
from typing import Any

from pyvfio._ffi import C
from pyvfio.fake.memory import kerr
from pyvfio.fake.uaccess import FakeFile, IoctlArg

PAGE_SIZE = 4096
KMALLOC_MAX_SIZE = 4 << 20  # x86-64: PAGE_SIZE << MAX_PAGE_ORDER (10)
ROM_INDEX = C.VFIO_PCI_ROM_REGION_INDEX
U64 = (1 << 64) - 1
DMA_IOVA_USE_SWIOTLB = 1 << 63  # include/linux/dma-mapping.h: a total length with it is EINVAL


class DmaBufFile(FakeFile):
    """An exported dma-buf: BAR ``index`` of ``dev`` over ``ranges`` ((offset, length), ...)."""

    kind = "dma-buf"
    positional = False  # anon_inode_getfile: no FMODE_PREAD/PWRITE (pread is ESPIPE)

    def __init__(self, dev: Any, index: int, ranges: list[tuple[int, int]],
                 open_flags: int = os.O_RDWR) -> None:
        self.dev, self.index, self.ranges = dev, index, ranges
        self.size = sum(n for _, n in ranges)
        self.accmode = open_flags & os.O_ACCMODE

    def check_mmap(self, prot: int) -> None:
        """do_mmap's file-mode checks (a shared writable map needs FMODE_WRITE, any map
        FMODE_READ: EACCES), then dma_buf_mmap_internal: vfio-pci's ops have no mmap (EINVAL)."""
        if prot & mmap.PROT_WRITE and self.accmode not in (os.O_WRONLY, os.O_RDWR):
            raise kerr(errno.EACCES)
        if self.accmode not in (os.O_RDONLY, os.O_RDWR):
            raise kerr(errno.EACCES)
        raise kerr(errno.EINVAL)


def feature_dma_buf(dev: Any, flags: int, arg: IoctlArg, install_fd: Any) -> int:
    """vfio_pci_core_feature_dma_buf on ``dev`` (a PCIDevice model); return the new fd."""
    get, set_ = C.VFIO_DEVICE_FEATURE_GET, C.VFIO_DEVICE_FEATURE_SET
    if flags & set_:
        raise kerr(errno.EINVAL)  # vfio_check_feature: GET only
    if flags & C.VFIO_DEVICE_FEATURE_PROBE:
        return 0
    if not flags & get or arg.size - 8 < 16:
        raise kerr(errno.EINVAL)
    index, open_flags, dflags, nr = struct.unpack("<IIII", arg.mem.read(arg.value + 8, 16))
    if not nr or dflags:
        raise kerr(errno.EINVAL)
    if index >= ROM_INDEX or not dev.bars[index].size:
        raise kerr(errno.ENODEV)  # vfio_pci_core_get_iomap: no such BAR (before the copy-in:
    if 16 * nr > KMALLOC_MAX_SIZE:  # the lane's 7.3 answers ENODEV for 2^32-1 ranges of BAR2)
        raise kerr(errno.ENOMEM)  # memdup_array_user of the ranges: kmalloc refuses the size
    ranges = _ranges(dev, index, arg.mem.read(arg.value + 24, 16 * nr))
    return int(install_fd(DmaBufFile(dev, index, ranges, open_flags)))


def _ranges(dev: Any, index: int, raw: bytes) -> list[tuple[int, int]]:
    """The copied-in ranges, checked against BAR ``index``: EINVAL, EOVERFLOW."""
    ranges = [struct.unpack_from("<QQ", raw, 16 * i) for i in range(len(raw) // 16)]
    for offset, length in ranges:  # validate_dmabuf_input, every range first
        if not length or offset % PAGE_SIZE or length % PAGE_SIZE:
            raise kerr(errno.EINVAL)
    total = sum(length for _, length in ranges)
    if total > U64 or total & DMA_IOVA_USE_SWIOTLB:  # check_add_overflow of the lengths
        raise kerr(errno.EINVAL)
    bar = dev.bars[index]
    for offset, length in ranges:  # vfio_pci_core_fill_phys_vec, from the BAR's host address
        if bar.address + offset + length > U64:  # check_add_overflow(start, offset), (+ length)
            raise kerr(errno.EOVERFLOW)
        if offset + length > bar.size:
            raise kerr(errno.EINVAL)  # outside the BAR
    return [(int(o), int(n)) for o, n in ranges]
