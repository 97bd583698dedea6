"""IOMMU_IOAS_MAP_FILE and IOMMU_IOAS_CHANGE_PROCESS of the fake iommufd (Linux 7.3 ioas.c,
io_pagetable.c:iopt_map_file_pages, pages.c).

A file mapping is backed by the file's own pages: the fake maps the memfd (a real fd of this
process) shared, so a fake device's DMA through the area reads and writes the file, as on Linux.
Pinning follows the kernel: pages are pinned (here: checked) when a domain maps the IOAS; a memfd
shorter than the range, or a file that is no memfd (memfd_pin_folios), is EINVAL then.
CHANGE_PROCESS moves the pin accounting of every mapping of the context to the caller: EINVAL
while any mapping is not a file one, EOPNOTSUPP for a non-zero ``__reserved``.

Known limits: an IOAS_COPY of a file area becomes a plain area in the fake (the kernel keeps it a
file area for CHANGE_PROCESS); a file mapped before any domain is not re-checked when one comes.
"""

from __future__ import annotations

import errno
import mmap
import os
from typing import Any

from pyvfio import uapi
from pyvfio._ffi import C, ffi
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.dmabuf import DmaBufFile
from pyvfio.fake.ioas import PAGE_SIZE, U64_MAX, ULONG_MAX, Area
from pyvfio.fake.iommufd import RW, IOASObj, IommufdCtx
from pyvfio.fake.memory import kerr
from pyvfio.fake.uaccess import IoctlArg

MAP_FLAGS = C.IOMMU_IOAS_MAP_FIXED_IOVA | RW


class FileArea(Area):
    """A mapping of a file: ``backing`` is the fake's shared mmap of its pages."""

    __slots__ = ("backing",)

    def __init__(self, backing: mmap.mmap, offset: int, prot: int) -> None:
        addr = int(ffi.cast("uintptr_t", ffi.from_buffer(backing)))
        super().__init__(addr + offset, prot, True)
        self.backing = backing


def _is_memfd(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:")
    except OSError:
        return False


def _file_pages(fd: int, start: int, length: int, pin: bool) -> tuple[mmap.mmap, int]:
    """Map the file range; check what pinning would (EINVAL) when ``pin``. Raises EBADF."""
    try:
        size = os.fstat(fd).st_size
    except OSError:
        raise kerr(errno.EBADF) from None
    if pin and (not _is_memfd(fd) or start + length > size):
        raise kerr(errno.EINVAL)  # memfd_pin_folios: not shmem/hugetlbfs, or past EOF
    first = start - start % PAGE_SIZE
    span = -(-(start + length - first) // PAGE_SIZE) * PAGE_SIZE
    try:
        backing = mmap.mmap(fd, span, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                            offset=first)
    except (OSError, ValueError):
        raise kerr(errno.EINVAL) from None  # not mappable (the kernel fails the pin likewise)
    return backing, start - first


def IOMMU_IOAS_MAP_FILE(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802 - kernel name
    cmd = io.cmd
    if cmd.flags & ~MAP_FLAGS:
        raise kerr(errno.EOPNOTSUPP)
    if cmd.iova >= ULONG_MAX or cmd.length >= ULONG_MAX:
        raise kerr(errno.EOVERFLOW)
    if not cmd.flags & RW:
        raise kerr(errno.EINVAL)
    ioas = ctx.get_ioas(cmd.ioas_id)
    if not cmd.length:
        raise kerr(errno.EINVAL)
    if cmd.start + cmd.length - 1 > U64_MAX:
        raise kerr(errno.EOVERFLOW)
    if cmd.fd < 0:
        raise kerr(errno.EBADF)
    buf = ctx.lookup_fd(cmd.fd)
    if isinstance(buf, DmaBufFile):
        area: Area = _dmabuf_area(buf, cmd)
    else:
        backing, offset = _file_pages(cmd.fd, cmd.start, cmd.length, pin=bool(ioas.hwpts))
        area = FileArea(backing, offset, cmd.flags & RW)
    fixed = cmd.iova if cmd.flags & C.IOMMU_IOAS_MAP_FIXED_IOVA else None
    try:
        cmd.iova = ioas.iopt.insert(fixed, cmd.length, area)
    except OSError:
        if isinstance(area, FileArea):
            area.backing.close()
        raise


class DmaBufArea(Area):
    """A mapping of a vfio-pci BAR dma-buf: peer-to-peer MMIO, which the fake's DMA does not
    reach (a pseudo address outside user memory), and no pinned-page accounting."""

    __slots__ = ("dmabuf",)

    def __init__(self, dmabuf: DmaBufFile, prot: int) -> None:
        super().__init__(1 << 63, prot, True)
        self.dmabuf = dmabuf


def _dmabuf_area(buf: DmaBufFile, cmd: Any) -> Area:
    """iopt_alloc_dmabuf_pages + vfio_pci_dma_buf_iommufd_map."""
    if cmd.start + cmd.length - 1 >= buf.size:
        raise kerr(errno.EINVAL)
    if not buf.dev.config[4] & 0x2:  # PCI_COMMAND_MEMORY off: the dma-buf is revoked
        raise kerr(errno.ENODEV)
    if len(buf.ranges) != 1:
        raise kerr(errno.EOPNOTSUPP)  # "more than one range to iommufd" is not supported yet
    return DmaBufArea(buf, cmd.flags & RW)


def IOMMU_IOAS_CHANGE_PROCESS(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802
    if io.cmd.__reserved:
        raise kerr(errno.EOPNOTSUPP)
    for obj in ctx.table.objects.values():
        if isinstance(obj, IOASObj) and any(
                not isinstance(area, FileArea) for _, _, area in obj.iopt.areas.items()):
            raise kerr(errno.EINVAL)  # only memfd maps can move (IOPT_ADDRESS_FILE; no dma-buf)
    # the pinned-page accounting moves to the caller; the fake charges no process


OPS = (
    Op(uapi.IOMMU_IOAS_MAP_FILE, "iommufd", IOMMU_IOAS_MAP_FILE, Conv.SIZE,
       "struct iommu_ioas_map_file", "iova", since="6.13"),
    Op(uapi.IOMMU_IOAS_CHANGE_PROCESS, "iommufd", IOMMU_IOAS_CHANGE_PROCESS, Conv.SIZE,
       "struct iommu_ioas_change_process", "__reserved", since="6.13"),
)
"""MAP_FILE and CHANGE_PROCESS (Linux 6.13); NOIOMMU_GET_PA is fake/noiommu.py's."""
