"""The iommufd file's mmap (Linux 7.3 iommufd/main.c:iommufd_fops_mmap): regions an object offered
(the mock vIOMMU's two pages, selftest.c mock_viommu_init), mapped as plain memory that holds its
owner."""

from __future__ import annotations

import errno

from pyvfio.fake.iommufd import IommufdCtx, Obj
from pyvfio.fake.memory import kerr

PAGE_SIZE = 4096


def mmaps(ctx: IommufdCtx) -> dict[int, tuple[Obj, int]]:
    """The ctx's mmap-able regions (mt_mmap): offset -> (owner, length)."""
    found: dict[int, tuple[Obj, int]] | None = getattr(ctx, "mmaps", None)
    if found is None:
        found = {}
        ctx.mmaps = found  # type: ignore[attr-defined]
    return found


class PageMMIO:
    """An mmap of pages an iommufd object offered (iommufd_fops_mmap: the vIOMMU's two pages):
    plain memory, and the mapping holds its owner (IOMMU_DESTROY is EBUSY until it is closed)."""

    regions = None  # not a BAR: FakeKernel.leaks() reports BAR mmaps only

    def __init__(self, owner: Obj, page: bytearray) -> None:
        self.owner: Obj | None = owner
        self.page = page
        owner.users += 1

    def __len__(self) -> int:
        return len(self.page)

    @property
    def closed(self) -> bool:
        return self.owner is None

    def _check(self, offset: int, size: int) -> bytearray:
        if self.owner is None:
            raise ValueError("I/O operation on a closed mapping")
        if offset < 0 or size < 0 or offset + size > len(self.page):
            raise ValueError(f"[{offset:#x}, +{size:#x}) is outside the mapping")
        return self.page

    def read(self, offset: int, width: int) -> int:
        return int.from_bytes(self._check(offset, width)[offset:offset + width], "little")

    def write(self, offset: int, width: int, value: int) -> None:
        self._check(offset, width)[offset:offset + width] = value.to_bytes(width, "little")

    def read_bytes(self, offset: int, size: int) -> bytes:
        return bytes(self._check(offset, size)[offset:offset + size])

    def write_bytes(self, offset: int, data: bytes) -> None:
        self._check(offset, len(data))[offset:offset + len(data)] = data

    def close(self) -> None:
        if self.owner is not None:
            self.owner.users -= 1
            self.owner = None


def iommufd_mmap(ctx: IommufdCtx, length: int, offset: int, shared: bool = True) -> PageMMIO:
    """main.c:iommufd_fops_mmap: only exactly an offered region (offset and length), page
    aligned and shared; anything else ENXIO (EINVAL for an unaligned length)."""
    if length % PAGE_SIZE or not shared:
        raise kerr(errno.EINVAL)
    found = mmaps(ctx).get(offset)
    if found is None or found[1] != length:
        raise kerr(errno.ENXIO)
    owner = found[0]
    page: bytearray | None = getattr(owner, "page", None)  # viommu.VIOMMUObj.page
    assert page is not None
    return PageMMIO(owner, page)
