"""Op families of /dev/iommu: IOAS, HWPT, devices, options, fault queues, the VFIO compat ioctls
on an iommufd, and the ioctls newer than 6.12 (which a 6.12 kernel must refuse)."""

from __future__ import annotations

import struct
from typing import Any

from pyvfio import uapi
from tests.differential import arena
from tests.differential import gen_vfio
from tests.differential.gen import U64, Gen

IOMMU = ("iommu",)


def _fd(g: Gen) -> int:
    return g.fd(*IOMMU)


def _sized(g: Gen, request: int, minsz: int, body: bytearray, patches: list[Any] = (),
           watch: tuple[Any, ...] = (), ret: Any = None) -> int:
    """Issue an iommufd ioctl whose first u32 is ``size`` (sizeof = len(body))."""
    size, tail = g.iommufd_size(minsz, len(body))
    struct.pack_into("<I", body, 0, size)
    return g.ioctl(_fd(g), request, bytes(body) + tail, list(patches), watch, ret)


def ioas_alloc(g: Gen) -> None:
    body = bytearray(struct.pack("<III", 0, g.pick((0, 0, 0, 0, 1, 0x80000000)), 0))
    i = _sized(g, uapi.IOMMU_IOAS_ALLOC, 12, body)
    g.ids["ioas"].append((i, 8))


def destroy(g: Gen) -> None:
    body = bytearray(8)
    patches: list[Any] = []
    g.id_patch(body, 4, ("ioas", "hwpt", "devid", "fault"), patches)
    _sized(g, uapi.IOMMU_DESTROY, 8, body, patches)


def _ranges(g: Gen, n: int) -> bytes:
    out = b""
    for _ in range(n):
        start = g.pick((0, 0x1000, 0x100000, 0x10000000, 0x1001, U64 - 0xFFF))
        last = g.pick((0xFFF, 0xFFFFF, 0x1FFFFF, 0x7FFFFFFF, U64, 0x1FFE, start - 1 if start
                       else 0))
        out += struct.pack("<QQ", start, last & U64)
    return out


def allow_iovas(g: Gen) -> None:
    n = g.pick((0, 1, 1, 2, 3))
    body = bytearray(struct.pack("<IIIIQ", 0, 0, n, g.pick((0, 0, 0, 1)), 0))
    patches: list[Any] = []
    g.id_patch(body, 4, ("ioas",), patches)
    g.addr_patch(body, 16, arena.AUX, patches)
    _sized(g, uapi.IOMMU_IOAS_ALLOW_IOVAS, 24, body, patches, ((arena.AUX, _ranges(g, n), 256),))


def iova_ranges(g: Gen) -> None:
    n = g.pick((0, 1, 1, 2, 4, 0x10000000))
    body = bytearray(struct.pack("<IIIIQQ", 0, 0, n, g.pick((0, 0, 0, 1)), 0, 0))
    patches: list[Any] = []
    g.id_patch(body, 4, ("ioas",), patches)
    if g.chance(0.9):
        g.addr_patch(body, 16, arena.AUX, patches)
    _sized(g, uapi.IOMMU_IOAS_IOVA_RANGES, 32, body, patches, ((arena.AUX, b"", 256),))


def ioas_map(g: Gen) -> None:
    flags = g.pick((6, 6, 7, 7, 4, 2, 0, 1, 8, 0x80000006))
    iova = g.iova()
    length = g.length() if g.chance(0.5) else g.pick((0x1000, 0x2000, 0x200000, 0x10000))
    body = bytearray(struct.pack("<IIIIQQQ", 0, flags, 0, g.pick((0, 0, 0, 1)), 0, length, iova))
    patches: list[Any] = []
    g.id_patch(body, 8, ("ioas",), patches)
    if g.chance(0.95):
        g.addr_patch(body, 16, g.vaddr(), patches)
    i = _sized(g, uapi.IOMMU_IOAS_MAP, 40, body, patches)
    g.iovas.append((iova, length))
    _ = i


def ioas_copy(g: Gen) -> None:
    flags = g.pick((6, 7, 7, 4, 0, 1, 8))
    body = bytearray(struct.pack("<IIIIQQQ", 0, flags, 0, 0, g.length(), g.iova(), g.iova()))
    patches: list[Any] = []
    g.id_patch(body, 8, ("ioas",), patches)
    g.id_patch(body, 12, ("ioas",), patches)
    _sized(g, uapi.IOMMU_IOAS_COPY, 40, body, patches)


def ioas_unmap(g: Gen) -> None:
    iova, length = (0, U64) if g.chance(0.2) else (g.iova(), g.length())
    body = bytearray(struct.pack("<IIQQ", 0, 0, iova, length))
    patches: list[Any] = []
    g.id_patch(body, 4, ("ioas",), patches)
    _sized(g, uapi.IOMMU_IOAS_UNMAP, 24, body, patches)


def option(g: Gen) -> None:
    opt = g.pick((0, 0, 1, 1, 1, 2, 0xFFFFFFFF))
    op = g.pick((0, 1, 1, 2))
    body = bytearray(struct.pack("<IIHHIQ", 0, opt, op, g.pick((0, 0, 0, 0, 1)), 0,
                                 g.pick((0, 1, 1, 2, U64))))
    patches: list[Any] = []
    if opt == 1 or g.chance(0.3):
        g.id_patch(body, 12, ("ioas",), patches)
    _sized(g, uapi.IOMMU_OPTION, 24, body, patches)


def vfio_ioas(g: Gen) -> None:
    op = g.pick((0, 0, 1, 1, 2, 3))
    body = bytearray(struct.pack("<IIHH", 0, 0, op, g.pick((0, 0, 0, 1))))
    patches: list[Any] = []
    if op != 0 or g.chance(0.2):
        g.id_patch(body, 4, ("ioas",), patches)
    i = _sized(g, uapi.IOMMU_VFIO_IOAS, 12, body, patches)
    g.ids["ioas"].append((i, 4))


def hwpt_alloc(g: Gen) -> None:
    flags = g.pick((0, 0, 0, 1, 2, 4, 3, 8, 0x10))
    dtype = g.pick((0, 0, 0, 0, 1, 2, 3, 99))
    dlen = 0 if dtype == 0 and g.chance(0.8) else g.pick((0, 8, 24, 32))
    body = bytearray(struct.pack("<IIIIIIIIQII", 0, flags, 0, 0, 0, g.pick((0, 0, 0, 1)), dtype,
                                 dlen, 0, 0, g.pick((0, 0, 0, 1))))
    patches: list[Any] = []
    g.id_patch(body, 8, ("devid",), patches)
    g.id_patch(body, 12, ("ioas", "hwpt"), patches)
    if flags & 4 or g.chance(0.1):
        g.id_patch(body, 40, ("fault",), patches)
    watch: tuple[Any, ...] = ()
    if dlen or g.chance(0.1):
        g.addr_patch(body, 32, arena.AUX, patches)
        watch = ((arena.AUX, struct.pack("<QQII", 0, 0x10000000, 48, 0), 64),)
    i = _sized(g, uapi.IOMMU_HWPT_ALLOC, 24, body, patches, watch)
    g.ids["hwpt"].append((i, 16))


def hw_info(g: Gen) -> None:
    dlen = g.pick((0, 8, 24, 24, 32, 64))
    body = bytearray(struct.pack("<IIIIQIB3sQ", 0, g.pick((0, 0, 0, 1)), 0, dlen, 0, 0, 0,
                                 g.pick((b"\0\0\0", b"\0\0\0", b"\0\1\0")), 0))
    patches: list[Any] = []
    g.id_patch(body, 8, ("devid",), patches)
    g.addr_patch(body, 16, arena.AUX, patches)
    _sized(g, uapi.IOMMU_GET_HW_INFO, 32, body, patches, ((arena.AUX, b"\x77" * 8, 128),))


def dirty_tracking(g: Gen) -> None:
    if g.chance(0.5):
        body = bytearray(struct.pack("<IIII", 0, g.pick((0, 1, 1, 2)), 0, g.pick((0, 0, 1))))
        patches: list[Any] = []
        g.id_patch(body, 8, ("hwpt",), patches)
        _sized(g, uapi.IOMMU_HWPT_SET_DIRTY_TRACKING, 16, body, patches)
        return
    body = bytearray(struct.pack("<IIIIQQQQ", 0, 0, g.pick((0, 0, 1, 2)), g.pick((0, 0, 1)),
                                 g.iova(), g.length(), g.pick((4096, 0, 8192, 0x800)), 0))
    patches = []
    g.id_patch(body, 4, ("hwpt",), patches)
    g.addr_patch(body, 40, arena.AUX, patches)
    _sized(g, uapi.IOMMU_HWPT_GET_DIRTY_BITMAP, 48, body, patches, ((arena.AUX, b"", 512),))


def invalidate(g: Gen) -> None:
    n = g.pick((0, 1, 2))
    body = bytearray(struct.pack("<IIQIIII", 0, 0, 0, g.pick((0, 1, 2, 99)),
                                 g.pick((0, 16, 32)), n, g.pick((0, 0, 1))))
    patches: list[Any] = []
    g.id_patch(body, 4, ("hwpt",), patches)
    g.addr_patch(body, 8, arena.AUX, patches)
    _sized(g, uapi.IOMMU_HWPT_INVALIDATE, 32, body, patches, ((arena.AUX, bytes(64), 64),))


def fault_alloc(g: Gen) -> None:
    body = bytearray(struct.pack("<IIII", 0, g.pick((0, 0, 0, 1)), 0, 0))
    i = _sized(g, uapi.IOMMU_FAULT_QUEUE_ALLOC, 16, body, ret=12)
    g.h["fault"].append(i)
    g.ids["fault"].append((i, 8))


def newer(g: Gen) -> None:
    """An ioctl 6.12 does not have (0x8f-0x95), or past the table."""
    nr = g.pick((0x8F, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x9F, 0xA0))
    body = bytearray(struct.pack("<I", 0)) + bytes(g.pick((28, 44, 60)))
    size = len(body) if g.chance(0.7) else g.pick((0, 8, 4096))
    struct.pack_into("<I", body, 0, size)
    g.ioctl(_fd(g), 0x3B00 | nr, body)


def iommu_misc(g: Gen) -> None:
    roll = g.r.random()
    if roll < 0.3:
        g.add(("open", "iommu"), "iommu")
    elif roll < 0.6:
        g.add(("open", f"cdev:{gen_vfio._dev_index(g)}"), "cdev")
    else:
        nr = g.pick((0x64, 0x65, 0x66, 0x70, 0x7F, 0x8E, 0x81))
        g.ioctl(_fd(g), 0x3B00 | nr | g.pick((0, 0, 0xC0180000)), bytes(16))


def preamble_iommufd(g: Gen) -> None:
    """open /dev/iommu, IOAS_ALLOC, open cdev, BIND, ATTACH(ioas); steps may slip."""
    from tests.differential import gen_device

    g.add(("open", "iommu"), "iommu")
    if not g.chance(0.05):
        ioas_alloc(g)
    k = 0 if g.chance(0.88) else g.r.randrange(len(g.bdfs))
    g.add(("open", f"cdev:{k}"), "cdev")
    if g.chance(0.15):
        g.add(("open", f"cdev:{g.r.randrange(len(g.bdfs))}"), "cdev")
    if not g.chance(0.05):
        gen_device.bind(g)
    if not g.chance(0.08):
        gen_device.attach(g)


def preamble_compat(g: Gen) -> None:
    """open /dev/iommu as a container, open group, SET_CONTAINER, SET_IOMMU, GET_DEVICE_FD."""
    i = g.add(("open", "iommu"), "iommu")
    g.h["container"].append(i)
    if g.chance(0.1):
        ioas_alloc(g)
        if g.chance(0.5):
            vfio_ioas(g)
    k = 0 if g.chance(0.88) else g.r.randrange(len(g.bdfs))
    gr = gen_vfio.open_group(g, k)
    if not g.chance(0.06):
        gen_vfio.set_container(g, gr, i)
    if not g.chance(0.06):
        gen_vfio.set_iommu(g, i)
    if not g.chance(0.06):
        gen_vfio.get_device_fd(g, gr, k)


IOMMUFD: list[tuple[float, Any]] = [
    (2, ioas_alloc), (2.5, destroy), (1.5, allow_iovas), (2, iova_ranges), (5, ioas_map),
    (2, ioas_copy), (4, ioas_unmap), (2.5, option), (1.5, vfio_ioas), (3, hwpt_alloc),
    (1.5, hw_info), (1.5, dirty_tracking), (1, invalidate), (1.5, fault_alloc), (1.5, newer),
    (1.5, iommu_misc),
]
COMPAT: list[tuple[float, Any]] = [
    (1, ioas_alloc), (1, destroy), (1, iova_ranges), (1, ioas_map), (1, ioas_unmap),
    (1.5, vfio_ioas), (1, option),
]
