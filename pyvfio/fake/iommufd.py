"""The /dev/iommu fd kind of the fake kernel: iommufd objects, ids and the IOMMU_* ioctls.

One :class:`IommufdFile` per open of /dev/iommu (main.c:iommufd_fops_open).  Requests go through
:meth:`IommufdFile.ioctl`, which applies the size convention of main.c:iommufd_fops_ioctl (size
below the minimum EINVAL, non-zero bytes past the struct E2BIG, the struct copied back on success)
and dispatches to a handler named after the ioctl.  Object ids come from one per-fd space, as the
kernel's ``xa_alloc(XA_FLAGS_ALLOC1, xa_limit_31b)``: the lowest free id >= 1, so a destroyed id is
handed out again.  The HWPT ioctls live in :mod:`pyvfio.fake.hwpt`.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyvfio import uapi
from pyvfio._ffi import C
from pyvfio.fake.dispatch import Conv, Op, RespondThen
from pyvfio.fake.ioas import PAGE_SIZE, U64_MAX, ULONG_MAX, Area, IOPageTable
from pyvfio.fake.iommu import IOMMUModel
from pyvfio.fake.linux import Linux
from pyvfio.fake.memory import UserMemory, kerr
from pyvfio.fake.uaccess import FakeFile, IoctlArg

MAP_FLAGS = C.IOMMU_IOAS_MAP_FIXED_IOVA | C.IOMMU_IOAS_MAP_WRITEABLE | C.IOMMU_IOAS_MAP_READABLE
RW = C.IOMMU_IOAS_MAP_WRITEABLE | C.IOMMU_IOAS_MAP_READABLE


class Obj:
    """An iommufd object; ``users`` counts references other objects hold on it."""

    kind = "ANY"

    def __init__(self) -> None:
        self.id = 0
        self.users = 0

    def busy(self) -> bool:
        """Tell whether IOMMU_DESTROY must answer EBUSY."""
        return self.users > 0

    def destroy(self, ctx: IommufdCtx) -> None:
        """Drop the references this object holds (called once it is out of the table)."""

    def cache_invalidate_user(self, ctx: IommufdCtx, cmd: Any) -> tuple[int, int]:
        """IOMMU_HWPT_INVALIDATE's driver op (a nested domain's ``cache_invalidate_user``, a
        vIOMMU's ``cache_invalidate``): (entries handled, errno or 0); none here: EOPNOTSUPP."""
        return 0, errno.EOPNOTSUPP


class IOASObj(Obj):
    """IOMMUFD_OBJ_IOAS."""

    kind = "IOAS"

    def __init__(self, model: IOMMUModel) -> None:
        super().__init__()
        self.iopt = IOPageTable(model.max_iova_alignment)
        self.hwpts: list[Any] = []  # HWPT_PAGING objects whose domains map this IOAS


@dataclass
class ObjectTable:
    """The per-fd xarray of objects: ids from 1, lowest free first."""

    objects: dict[int, Obj] = field(default_factory=dict)

    def add(self, obj: Obj) -> int:
        """Give ``obj`` the lowest free id and return it."""
        new_id = 1
        while new_id in self.objects:  # ids stay small: a test's handful of objects
            new_id += 1
        if new_id >= 1 << 31:
            raise kerr(errno.EBUSY)
        obj.id = new_id
        self.objects[new_id] = obj
        return new_id

    def get(self, obj_id: int, kind: str = "ANY") -> Obj:
        """Return the object ``obj_id`` of ``kind`` (iommufd_get_object). Raises ENOENT."""
        obj = self.objects.get(obj_id)
        if obj is None or obj.kind == "TOMBSTONE" or kind not in ("ANY", obj.kind):
            raise kerr(errno.ENOENT)
        return obj

    def remove(self, obj: Obj) -> None:
        """Forget ``obj`` (its id becomes free)."""
        del self.objects[obj.id]


class IommufdCtx:
    """The state behind one /dev/iommu fd (struct iommufd_ctx)."""

    def __init__(self, model: IOMMUModel, memory: UserMemory, install_fd: Callable[[Any], int]):
        self.model = model
        self.memory = memory
        self.install_fd = install_fd
        self.lookup_fd: Callable[[int], Any] = lambda fd: None  # the kernel's fd table (fget)
        self.table = ObjectTable()
        self.account_mode_mm = False
        self.vfio_ioas: IOASObj | None = None
        self.groups: dict[object, Any] = {}  # iommu group key -> HWPT its devices are attached to
        self.users = 0  # bound devices and fault fds keep the ctx alive (file references)
        self.closed = False  # the /dev/iommu fd itself was closed

    def get_ioas(self, ioas_id: int) -> IOASObj:
        """Return the IOAS ``ioas_id``. Raises ENOENT."""
        obj = self.table.get(ioas_id, "IOAS")
        assert isinstance(obj, IOASObj)
        return obj

    def destroy(self, obj: Obj) -> None:
        """Remove ``obj`` from the table and release what it holds."""
        self.table.remove(obj)
        if obj is self.vfio_ioas:
            self.vfio_ioas = None
        obj.destroy(self)

    def release(self) -> None:
        """Destroy everything, leaves first (main.c:iommufd_fops_release)."""
        while self.table.objects:
            for obj in sorted(self.table.objects.values(), key=lambda o: -o.id):
                if not obj.busy():
                    self.destroy(obj)
                    break
            else:  # a reference cycle would be a fake bug: do not loop forever
                raise RuntimeError(f"iommufd objects still referenced: {self.table.objects}")

    def put(self) -> None:
        """Drop a file reference; the last one after close runs the release."""
        self.users -= 1
        if self.closed and not self.users:
            self.release()

    def pin(self, ioas: IOASObj, uptr: int, length: int, writable: bool) -> None:
        """Pin user pages if a domain maps this IOAS (lazy otherwise, pages.c). Raises EFAULT."""
        if ioas.hwpts:
            self.memory.check_pinnable(uptr, length, write=writable)


class IommufdFile(FakeFile):
    """An open /dev/iommu; its ioctls run on the :class:`IommufdCtx` (owner ``iommufd``)."""

    kind = "iommufd"

    def __init__(self, model: IOMMUModel, memory: UserMemory, install_fd: Callable[[Any], int]):
        self.ctx = IommufdCtx(model, memory, install_fd)

    def target(self, owner: str) -> Any:
        return self.ctx

    def release(self) -> None:
        """Close: destroy every object once no bound device or fault fd holds the ctx."""
        self.ctx.closed = True
        if not self.ctx.users:
            self.ctx.release()


# -- objects and IOAS handlers (main.c, ioas.c) -----------------------------------------------


def IOMMU_DESTROY(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802 - kernel name
    cmd = io.cmd
    obj = ctx.table.get(cmd.id)
    if obj.busy():
        raise kerr(errno.EBUSY)  # main.c:iommufd_object_remove, refcount_dec_if_one
    ctx.destroy(obj)


def IOMMU_IOAS_ALLOC(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802
    cmd = io.cmd
    if cmd.flags:
        raise kerr(errno.EOPNOTSUPP)
    cmd.out_ioas_id = ctx.table.add(IOASObj(ctx.model))


def IOMMU_IOAS_IOVA_RANGES(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802
    cmd = io.cmd
    if cmd.__reserved:
        raise kerr(errno.EOPNOTSUPP)
    ioas = ctx.get_ioas(cmd.ioas_id)
    ranges = ioas.iopt.iova_ranges()
    room = cmd.num_iovas
    if room and ranges:  # one copy_to_user of the entries that fit
        data = b"".join(struct.pack("<QQ", start, last) for start, last in ranges[:room])
        ctx.memory.write(cmd.allowed_iovas, data)
    cmd.num_iovas = len(ranges)
    cmd.out_iova_alignment = ioas.iopt.iova_alignment
    if len(ranges) > room:
        raise RespondThen(errno.EMSGSIZE)  # the count is copied back first (ioas.c)


def IOMMU_IOAS_ALLOW_IOVAS(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802
    cmd = io.cmd
    if cmd.__reserved:
        raise kerr(errno.EOPNOTSUPP)
    ioas = ctx.get_ioas(cmd.ioas_id)
    ranges = []
    for i in range(cmd.num_iovas):
        raw = ctx.memory.read(cmd.allowed_iovas + 16 * i, 16)
        ranges.append((int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little")))
    ioas.iopt.set_allowed(ranges)


def _check_map_flags(flags: int, reserved: int, *values: int) -> None:
    if flags & ~MAP_FLAGS or reserved:
        raise kerr(errno.EOPNOTSUPP)
    if any(v >= ULONG_MAX for v in values):
        raise kerr(errno.EOVERFLOW)
    if not flags & RW:
        raise kerr(errno.EINVAL)


def map_user(
    ctx: IommufdCtx, ioas: IOASObj, uptr: int, length: int, iova: int, flags: int, linux: Linux
) -> int:
    """iopt_map_user_pages: check the pages, place the area, pin if a domain exists."""
    # 6.13 (the MAP_FILE rework) moved the uptr + length overflow check into
    # pages.c:iopt_alloc_user_pages, ahead of iopt_alloc_pages' length check: a huge length
    # that also wraps the user address is EOVERFLOW there and EINVAL on 6.12 (both seen in the lane)
    wraps = uptr + length > U64_MAX
    if wraps and linux.at_least("6.13"):
        raise kerr(errno.EOVERFLOW)
    if length == 0 or length > (1 << 64) - 1 - PAGE_SIZE:
        raise kerr(errno.EINVAL)  # pages.c:iopt_alloc_pages
    if wraps:
        raise kerr(errno.EOVERFLOW)
    writable = bool(flags & C.IOMMU_IOAS_MAP_WRITEABLE)
    area = Area(uptr, flags & RW, writable)
    fixed = iova if flags & C.IOMMU_IOAS_MAP_FIXED_IOVA else None
    placed = ioas.iopt.insert(fixed, length, area)
    try:
        ctx.pin(ioas, uptr, length, writable)
        if not flags & RW and refuses_no_access(ctx, ioas):
            raise kerr(errno.EINVAL)  # a domain's iommu_map of the pinned pages fails
    except OSError:
        ioas.iopt.unmap(placed, placed + length - 1)
        raise
    return placed


def refuses_no_access(ctx: IommufdCtx, ioas: IOASObj) -> bool:
    """Whether a domain of ``ioas`` cannot map pages neither readable nor writable (only the
    compat MAP_DMA makes such areas: IOMMU_IOAS_MAP requires a R/W flag)."""
    return any((h.model or ctx.model).map_needs_access for h in ioas.hwpts)


def IOMMU_IOAS_MAP(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802
    cmd = io.cmd
    _check_map_flags(cmd.flags, cmd.__reserved, cmd.iova, cmd.length)
    ioas = ctx.get_ioas(cmd.ioas_id)
    cmd.iova = map_user(ctx, ioas, cmd.user_va, cmd.length, cmd.iova, cmd.flags, io.linux)


# IOMMU_IOAS_MAP_FILE and IOMMU_IOAS_CHANGE_PROCESS: pyvfio/fake/mapfile.py


def IOMMU_IOAS_COPY(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802
    cmd = io.cmd
    _check_map_flags(cmd.flags, 0, cmd.length, cmd.src_iova, cmd.dst_iova)
    src = ctx.get_ioas(cmd.src_ioas_id)
    pieces = src.iopt.get_pages(cmd.src_iova, cmd.length)
    dst = ctx.get_ioas(cmd.dst_ioas_id)
    fixed = cmd.dst_iova if cmd.flags & C.IOMMU_IOAS_MAP_FIXED_IOVA else None
    # one area per source piece, placed contiguously; pages stay shared (iopt_map_pages)
    areas = [(n, Area(p.uptr, cmd.flags & RW, p.pages_writable)) for n, p in pieces]
    cmd.dst_iova = dst.iopt.insert_pieces(fixed, areas)


def IOMMU_IOAS_UNMAP(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802
    cmd = io.cmd
    ioas = ctx.get_ioas(cmd.ioas_id)
    pinned = getattr(ioas, "access_pins", ())  # HW queues' internal accesses (fake/hw_queue.py)
    if any(cmd.iova < s + n and s <= cmd.iova + cmd.length - 1 for s, n in pinned):
        raise kerr(errno.EBUSY)
    if cmd.iova == 0 and cmd.length == U64_MAX:
        unmapped = ioas.iopt.mapped_bytes()
        ioas.iopt.areas.clear()  # iopt_unmap_all: success even when empty
    else:
        if cmd.iova >= ULONG_MAX or cmd.length >= ULONG_MAX:
            raise kerr(errno.EOVERFLOW)
        if cmd.length == 0:
            raise kerr(errno.EINVAL)
        if cmd.iova + cmd.length - 1 > ULONG_MAX:
            raise kerr(errno.EOVERFLOW)
        unmapped = ioas.iopt.unmap(cmd.iova, cmd.iova + cmd.length - 1)
    cmd.length = unmapped


def _op(request: uapi.Ioctl, handler: Callable[[IommufdCtx, IoctlArg], None], ctype: str,
        last: str, since: str = "6.2") -> Op:
    return Op(request, "iommufd", handler, Conv.SIZE, ctype, last, since)


OPS = (
    _op(uapi.IOMMU_DESTROY, IOMMU_DESTROY, "struct iommu_destroy", "id"),
    _op(uapi.IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOC, "struct iommu_ioas_alloc", "out_ioas_id"),
    _op(uapi.IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_ALLOW_IOVAS, "struct iommu_ioas_allow_iovas",
        "allowed_iovas"),
    _op(uapi.IOMMU_IOAS_COPY, IOMMU_IOAS_COPY, "struct iommu_ioas_copy", "src_iova"),
    _op(uapi.IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_IOVA_RANGES, "struct iommu_ioas_iova_ranges",
        "out_iova_alignment"),
    _op(uapi.IOMMU_IOAS_MAP, IOMMU_IOAS_MAP, "struct iommu_ioas_map", "iova"),
    _op(uapi.IOMMU_IOAS_UNMAP, IOMMU_IOAS_UNMAP, "struct iommu_ioas_unmap", "length"),
)
"""The object and IOAS ioctls of /dev/iommu (main.c, ioas.c)."""
