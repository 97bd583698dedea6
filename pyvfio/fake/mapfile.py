"""IOMMU_IOAS_MAP_FILE and IOMMU_IOAS_CHANGE_PROCESS of the fake iommufd (Linux 7.3 ioas.c,
io_pagetable.c:iopt_map_file_pages, pages.c).

A file mapping is backed by the file's own pages: the fake maps the memfd (a real fd of this
process) shared, so a fake device's DMA through the area reads and writes the file, as on Linux.
Pinning follows the kernel: pages are pinned (here: checked) when a domain maps the IOAS, at the
MAP_FILE if one is there, else when the first one comes (hwpt.py:fill_domain); a memfd shorter
than the range, or a file that is no memfd (memfd_pin_folios), is EINVAL then.
CHANGE_PROCESS moves the pin accounting of every mapping of the context to the caller: EINVAL
while any mapping is not a file one, EOPNOTSUPP for a non-zero ``__reserved``.

Known limits: an IOAS_COPY of a file area becomes a plain area in the fake (the kernel keeps it a
file area for CHANGE_PROCESS); a memfd grown after its MAP_FILE stays unpinnable in the fake.
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
    """A mapping of a file range.  ``backing`` is the fake's shared mmap of its pages when the
    kernel could pin them (memfd_pin_folios: a memfd covering the whole range), else None: such
    an area maps only while no domain is there (the kernel pins file pages for a domain only;
    nothing reads it before), and a domain cannot fill it (EINVAL, :meth:`pin`)."""

    __slots__ = ("backing", "start")

    def __init__(self, backing: mmap.mmap | None, start: int, prot: int) -> None:
        addr = int(ffi.cast("uintptr_t", ffi.from_buffer(backing))) if backing else 1 << 62
        super().__init__(addr + start % PAGE_SIZE, prot, True)  # backing: from the page of start
        self.backing, self.start = backing, start

    def alloc_hint(self) -> int:
        return int(self.start)  # the file offset (iopt_alloc_area_pages: IOPT_ADDRESS_FILE)

    def pin(self, memory: Any, length: int) -> None:
        """memfd_pin_folios: EINVAL for a file that is no memfd or a range past its end."""
        if self.backing is None:
            raise kerr(errno.EINVAL)

    def close(self) -> None:
        if self.backing is not None:
            self.backing.close()


def _is_memfd(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:")
    except OSError:
        return False


def _file_area(fd: int, start: int, length: int, prot: int) -> FileArea:
    """The area of a file range: its pages mapped when pinnable (:class:`FileArea`)."""
    size = os.fstat(fd).st_size
    if not _is_memfd(fd) or start + length > size:
        return FileArea(None, start, prot)
    first = start - start % PAGE_SIZE
    span = min(-(-(start + length - first) // PAGE_SIZE) * PAGE_SIZE, size - first)
    try:
        backing = mmap.mmap(fd, span, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                            offset=first)
    except (OSError, ValueError):
        return FileArea(None, start, prot)  # not mappable here: the kernel's pin fails likewise
    return FileArea(backing, start, prot)


def IOMMU_IOAS_MAP_FILE(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802 - kernel name
    """ioas.c:iommufd_ioas_map_file + io_pagetable.c:iopt_map_file_pages: a file's pages are
    looked at only when a domain maps the IOAS (at once if one is there, else when one comes).

    Errors: EOPNOTSUPP (flags), EOVERFLOW, EINVAL (no READ/WRITE, length 0 or above
    ULONG_MAX - PAGE_SIZE, a range past a dma-buf, pages a domain cannot pin), ENOENT (ioas),
    EBADF (fd), EEXIST/ENOSPC (IOVA), ENODEV (a revoked dma-buf).
    """
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
    area = _pages(ctx, cmd)
    fixed = cmd.iova if cmd.flags & C.IOMMU_IOAS_MAP_FIXED_IOVA else None
    try:
        iova = ioas.iopt.insert(fixed, cmd.length, area)
    except OSError:
        if isinstance(area, FileArea):
            area.close()
        raise
    if ioas.hwpts:  # iopt_fill_domains_pages, once the IOVA is taken
        try:
            area.pin(ctx.memory, cmd.length)
        except OSError:
            ioas.iopt.unmap(iova, iova + cmd.length - 1)
            raise
    cmd.iova = iova


def _pages(ctx: IommufdCtx, cmd: Any) -> Area:
    """The pages half of iopt_map_file_pages: a dma-buf's (iopt_alloc_dmabuf_pages) or a
    file's (fget, iopt_alloc_file_pages). Raises EBADF, EINVAL, ENODEV, EOPNOTSUPP."""
    if cmd.fd < 0:
        raise kerr(errno.EBADF)
    buf = ctx.lookup_fd(cmd.fd)
    if isinstance(buf, DmaBufFile):
        return _dmabuf_area(buf, cmd)
    try:
        os.fstat(cmd.fd)  # fget
    except OSError:
        raise kerr(errno.EBADF) from None
    if cmd.length > ULONG_MAX - PAGE_SIZE:
        raise kerr(errno.EINVAL)  # pages.c:iopt_alloc_pages
    return _file_area(cmd.fd, cmd.start, cmd.length, cmd.flags & RW)


class DmaBufArea(Area):
    """A mapping of a vfio-pci BAR dma-buf: peer-to-peer MMIO, which the fake's DMA does not
    reach (a pseudo address outside user memory), and no pinned-page accounting."""

    __slots__ = ("dmabuf", "start")

    def __init__(self, dmabuf: DmaBufFile, start: int, prot: int) -> None:
        super().__init__((1 << 63) + start % PAGE_SIZE, prot, True)
        self.dmabuf, self.start = dmabuf, start

    def alloc_hint(self) -> int:
        return int(self.start)  # the offset in the dma-buf (IOPT_ADDRESS_DMABUF)

    def pin(self, memory: Any, length: int) -> None:
        """dma-buf pages are not pinned user memory (vfio_pci_dma_buf_iommufd_map at MAP)."""


def _dmabuf_area(buf: DmaBufFile, cmd: Any) -> Area:
    """iopt_alloc_dmabuf_pages + vfio_pci_dma_buf_iommufd_map."""
    if cmd.start + cmd.length - 1 >= buf.size:
        raise kerr(errno.EINVAL)
    if not buf.dev.config[4] & 0x2:  # PCI_COMMAND_MEMORY off: the dma-buf is revoked
        raise kerr(errno.ENODEV)
    if len(buf.ranges) != 1:
        raise kerr(errno.EOPNOTSUPP)  # "more than one range to iommufd" is not supported yet
    return DmaBufArea(buf, cmd.start, cmd.flags & RW)


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
