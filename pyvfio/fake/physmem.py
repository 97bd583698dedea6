"""Physical addresses the fake invents for user pages, and /proc/self/pagemap that shows them.

The fake has no physical memory: user pages are the test process's own.  Where Linux answers with
a physical address (IOMMU_IOAS_NOIOMMU_GET_PA of a noiommu domain, /proc/self/pagemap as root),
the fake hands out page frames the first time a user page is asked about and keeps them: the same
page always answers the same frame, as a pinned page does on Linux.  Frames come from a counter in
runs of :data:`RUN` with one frame skipped after each run, so a buffer's pages are physically
contiguous in short runs and not beyond — both of GET_PA's length rules (a contiguous run, the
end of it) happen on the fake as they do on a real guest, where the allocator decides.

Known limits: frames are per user address, so two mappings of one memfd page answer two frames
(Linux: one); a page is never freed (its frame stays when the process unmaps it); pagemap answers
"present" for any page asked about, mapped or not (Linux: only for resident pages).
"""

from __future__ import annotations

import errno
import struct
from typing import Any

from pyvfio.fake.memory import kerr
from pyvfio.fake.uaccess import FakeFile

PAGE_SIZE = 4096
FIRST_PFN = 0x10000  # 256 MiB: above what firmware and the kernel image take
RUN = 3  # frames handed out back to back before one is skipped
PM_PRESENT = 1 << 63  # fs/proc/task_mmu.c
PM_PFN_MASK = (1 << 55) - 1
PAGEMAP = "/proc/self/pagemap"


class PhysFrames:
    """The invented page frame of each user page (virtual page number -> page frame number)."""

    def __init__(self) -> None:
        self._pfn: dict[int, int] = {}
        self._next = FIRST_PFN

    def pfn(self, vpn: int) -> int:
        """The frame of virtual page ``vpn``, handed out on first use."""
        found = self._pfn.get(vpn)
        if found is None:
            found = self._pfn[vpn] = self._next
            self._next += 1
            if (self._next - FIRST_PFN) % (RUN + 1) == RUN:
                self._next += 1  # the frame after a run is someone else's
        return found

    def phys(self, addr: int) -> int:
        """The physical address of user address ``addr``."""
        return self.pfn(addr // PAGE_SIZE) * PAGE_SIZE + addr % PAGE_SIZE


def frames(mem: Any) -> PhysFrames:
    """The frames of a fake kernel's user memory (one table per :class:`UserMemory`)."""
    found: PhysFrames | None = getattr(mem, "phys_frames", None)
    if found is None:
        found = PhysFrames()
        mem.phys_frames = found
    return found


class PagemapFile(FakeFile):
    """/proc/self/pagemap opened through the fake kernel: one little-endian u64 per virtual page
    (bit 63 present, bits 0-54 the frame, as root reads it), read with pread."""

    kind = "pagemap"

    def __init__(self, mem: Any) -> None:
        self.frames = frames(mem)

    def pread(self, size: int, offset: int) -> bytes:
        """fs/proc/task_mmu.c:pagemap_read: EINVAL unless offset and size are whole entries."""
        if offset % 8 or size % 8:
            raise kerr(errno.EINVAL)
        first = offset // 8
        return b"".join(struct.pack("<Q", PM_PRESENT | self.frames.pfn(vpn) & PM_PFN_MASK)
                        for vpn in range(first, first + size // 8))
