"""Op families of device fds (group-obtained or cdev): info ioctls with capability chains, IRQs,
resets, ioeventfds, features, iommufd binding, config space and BAR access, mmap."""

from __future__ import annotations

import struct
from typing import Any

from pyvfio import uapi
from tests.differential import arena
from tests.differential.gen import Gen
from tests.differential.gen_vfio import BAR0, CONFIG, EDU_SAFE_WRITES

DEVICE = ("device", "cdev")


def _dev(g: Gen) -> int:
    return g.fd(*DEVICE)


def device_info(g: Gen) -> None:
    data = struct.pack("<IIIIII", g.vfio_argsz(16, 24, big=0x100), g.pick((0, 0, 0xFFFFFFFF)),
                       0, 0, 0, 0)
    g.ioctl(_dev(g), uapi.VFIO_DEVICE_GET_INFO, data)


def region_info(g: Gen) -> None:
    index = g.pick((0, 0, 1, 5, 6, 7, 7, 8, 9, 10, 0xFFFFFFFF))
    data = struct.pack("<IIIIQQ", g.vfio_argsz(32, 32, big=0x80), g.pick((0, 0, 0xF)), index,
                       g.pick((0, 0, 32)), 0, 0)
    g.ioctl(_dev(g), uapi.VFIO_DEVICE_GET_REGION_INFO, data)


def irq_info(g: Gen) -> None:
    index = g.pick((0, 1, 2, 3, 4, 5, 6, 0xFFFFFFFF))
    data = struct.pack("<IIII", g.vfio_argsz(16, 16), g.pick((0, 0, 0xF)), index, 0)
    g.ioctl(_dev(g), uapi.VFIO_DEVICE_GET_IRQ_INFO, data)


def set_irqs(g: Gen) -> None:
    index = g.pick((0, 0, 1, 1, 2, 3, 4, 5))
    dtype = g.pick((1, 2, 4, 4, 4, 0, 3, 6))
    action = g.pick((0x20, 0x20, 0x20, 0x08, 0x10, 0, 0x30))
    flags = dtype | action | (g.pick((0x40, 0x80000000)) if g.chance(0.05) else 0)
    start = g.pick((0, 0, 0, 1, 0xFFFFFFFF))
    count = g.pick((0, 1, 1, 1, 2, 4, 0xFFFFFFFF))
    data = bytearray(20)
    patches: list[Any] = []
    n = min(count, 4)
    if dtype == 4:
        data += bytes(4 * n)
        for i in range(n):
            ref = g.fd("eventfd", p_right=0.8) if g.chance(0.85) else -1
            g.fd_patch(data, 20 + 4 * i, ref, patches)
    elif dtype == 2:
        data += bytes(g.pick((0, 1)) for _ in range(n))
    argsz = len(data) if g.chance(0.85) else g.pick((0, 19, 20, len(data) - 1, 4096))
    struct.pack_into("<IIIII", data, 0, argsz, flags, index, start, count)
    g.ioctl(_dev(g), uapi.VFIO_DEVICE_SET_IRQS, data, patches)


def reset(g: Gen) -> None:
    g.risky = True
    g.add(("ioctl", _dev(g), uapi.VFIO_DEVICE_RESET, 0, None))


def hot_reset_info(g: Gen) -> None:
    argsz = g.pick((12, 12, 20, 28, 12 + 8 * 8, 0, 11, 4096))
    data = struct.pack("<III", argsz, g.pick((0, 0, 3)), g.pick((0, 0, 5))) + bytes(64)
    g.ioctl(_dev(g), uapi.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, data)


def hot_reset(g: Gen) -> None:
    g.risky = True
    count = g.pick((0, 1, 1, 2, 3))
    data = bytearray(12 + 4 * count)
    patches: list[Any] = []
    for i in range(count):
        g.fd_patch(data, 12 + 4 * i, g.fd("group", "iommu", p_right=0.8), patches)
    argsz = len(data) if g.chance(0.85) else g.pick((0, 11, 12, len(data) + 8))
    struct.pack_into("<III", data, 0, argsz, g.pick((0, 0, 0, 1, 2)), count)
    g.ioctl(_dev(g), uapi.VFIO_DEVICE_PCI_HOT_RESET, data, patches)


def ioeventfd(g: Gen) -> None:
    flags = g.pick((4, 4, 1, 2, 8, 0, 3, 0x10, 0xC))
    offset = g.pick((BAR0 | 0x04, BAR0 | 0x04, BAR0 | 0x80, BAR0 | 0x100, BAR0 | 0x2,
                     BAR0 | 0xFFFFC, BAR0 | 0x100000, 1 << 40 | 4, CONFIG | 4, 6 << 40, 9 << 40))
    if offset < 0x100:
        g.bar_writes.add(offset)
    data = bytearray(struct.pack("<IIQQiI", 0, flags, offset, g.pick((0, 1, 0x1234)), -1, 0))
    patches: list[Any] = []
    ref = g.fd("eventfd", p_right=0.75) if g.chance(0.8) else g.pick((-1, -1, -2))
    if ref == -2:
        struct.pack_into("<i", data, 24, -2)
    else:
        g.fd_patch(data, 24, ref, patches)
    struct.pack_into("<I", data, 0, g.vfio_argsz(28, 32))
    g.ioctl(_dev(g), uapi.VFIO_DEVICE_IOEVENTFD, data, patches)


def feature(g: Gen) -> None:
    fid = g.pick((3, 3, 4, 4, 5, 5, 0, 1, 2, 6, 7, 8, 9, 10, 11, 12, 13, 0xFFFF))
    ops = g.pick((1 << 17, 1 << 17, 1 << 16, 1 << 18, 1 << 18 | 1 << 17, 1 << 18 | 1 << 16,
                  3 << 16, 0, 7 << 16, 1 << 19 | 1 << 17))
    if fid in (3, 4) and ops & (1 << 17) and not ops & (1 << 18):
        g.risky = True
    payload = bytearray(g.pick((0, 0, 4, 8, 16, 24)))
    patches: list[Any] = []
    if fid == 4 and len(payload) >= 4:
        g.fd_patch(payload, 0, g.fd("eventfd", p_right=0.7), patches)
        patches = [(off + 8, w, ref) for off, w, ref in patches]
    data = bytearray(struct.pack("<II", 0, fid | ops)) + payload
    argsz = len(data) if g.chance(0.85) else g.pick((0, 7, 8, len(data) + 4))
    struct.pack_into("<I", data, 0, argsz)
    g.ioctl(_dev(g), uapi.VFIO_DEVICE_FEATURE, data, patches)


def gfx(g: Gen) -> None:
    if g.chance(0.5):
        data = struct.pack("<II", g.vfio_argsz(64, 64), g.pick((1, 2, 4, 0))) + bytes(56)
        g.ioctl(_dev(g), uapi.VFIO_DEVICE_QUERY_GFX_PLANE, data)
    else:
        g.ioctl(_dev(g), uapi.VFIO_DEVICE_GET_GFX_DMABUF, struct.pack("<I", 0))


def device_unknown(g: Gen) -> None:
    nr = g.pick((0x64, 0x65, 0x79, 0x7A, 0x7F, 0x80, 0x85))
    g.ioctl(_dev(g), 0x3B00 | nr, bytes(32))


def bind(g: Gen) -> None:
    data = bytearray(struct.pack("<IIiI", g.vfio_argsz(16, 16), g.pick((0, 0, 0, 1, 2)), -1, 0))
    patches: list[Any] = []
    g.fd_patch(data, 8, g.fd("iommu", p_right=0.8), patches)
    if g.chance(0.05):
        data += struct.pack("<Q", 0)  # 7.x layout: token_uuid_ptr
        struct.pack_into("<I", data, 0, 24)
    i = g.ioctl(g.fd("cdev", "device"), uapi.VFIO_DEVICE_BIND_IOMMUFD, data, patches)
    g.ids["devid"].append((i, 12))


def attach(g: Gen) -> None:
    data = bytearray(struct.pack("<III", g.vfio_argsz(12, 12), g.pick((0, 0, 0, 1, 2)), 0))
    patches: list[Any] = []
    g.id_patch(data, 8, ("ioas", "hwpt"), patches)
    if g.chance(0.05):
        data += struct.pack("<I", 0)
        struct.pack_into("<I", data, 0, 16)
    i = g.ioctl(g.fd("cdev", "device"), uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, data, patches)
    g.ids["hwpt"].append((i, 8))


def detach(g: Gen) -> None:
    data = struct.pack("<II", g.vfio_argsz(8, 8), g.pick((0, 0, 0, 1)))
    g.ioctl(g.fd("cdev", "device"), uapi.VFIO_DEVICE_DETACH_IOMMUFD_PT, data)


def config_read(g: Gen) -> None:
    off = g.pick((0, 0, 2, 4, 6, 8, 0x0C, 0x10, 0x14, 0x2C, 0x30, 0x34, 0x3C, 0x3D, 0x40,
                  0x44, 0x48, 0x4C, 0x50, 0x80, 0xFC, 0xFF, 0x100, 0xFFF, 0x1000, 1))
    size = g.pick((1, 2, 4, 4, 8, 16, 64, 256, 3, 0))
    g.add(("pread", _dev(g), CONFIG | off, size))


def config_write(g: Gen) -> None:
    off = g.pick((0x04, 0x04, 0x05, 0x06, 0x0C, 0x0D, 0x10, 0x14, 0x30, 0x3C, 0x3D, 0x40, 0x42,
                  0x44, 0x48, 0x4C, 0x50, 0x80, 0xFC, 0x100, 2, 0x34))
    size = g.pick((1, 2, 4, 4, 8))
    value = g.pick((0, 0xFF, 0x0006, 0x0406, 0x0002, 0xFFFFFFFF, 0x12345678, 0x0400))
    if off <= 0x05 < off + size:
        g.risky = True
    data = (value & ((1 << 8 * size) - 1)).to_bytes(size, "little")
    g.add(("pwrite", _dev(g), CONFIG | off, data))


def bar_read(g: Gen) -> None:
    index = g.pick((0, 0, 0, 0, 1, 6, 8, 9))
    off = g.pick((0, 0, 4, 8, 0x20, 0x24, 0x80, 0x90, 0x2, 0x100, 0xFFFFC, 0xFFFFF, 0x100000))
    size = g.pick((4, 4, 4, 8, 1, 2, 3, 16, 0))
    g.add(("pread", _dev(g), index << 40 | off, size))


def bar_write(g: Gen) -> None:
    index = g.pick((0, 0, 0, 1, 6))
    off = g.pick(EDU_SAFE_WRITES)
    size = g.pick((4, 4, 8, 1, 2))
    if off in {0x80, 0x88}:
        size = g.pick((4, 8))
    value = g.pick((0, 1, 0x12345678, 0xFFFFFFFF, 0x40000))
    if index == 0 and off < 0x100:
        g.bar_writes.add(off)
    g.add(("pwrite", _dev(g), index << 40 | off,
           (value & ((1 << 8 * size) - 1)).to_bytes(size, "little")))


def mmap_ops(g: Gen) -> None:
    maps = g.h.get("map", [])
    if maps and not g.risky and g.chance(0.5):
        m = g.pick(maps)
        if g.chance(0.6):
            off = g.pick((0, 4, 0x20, 0x24, 0x80, 0x100))
            g.add(("mread", m, off, 8 if off >= 0x80 and g.chance(0.3) else 4))
        else:
            g.add(("mwrite", m, 0x04, 4, g.pick((0, 0x55AA55AA))))
            g.bar_writes.add(0x04)
        return
    if maps and g.chance(0.2):
        g.add(("munmap", g.pick(maps)))
        return
    length = g.pick((4096, 4096, 0x100000, 0x200000, 8192))
    offset = g.pick((0, 0, 0, 4096, 0x100000, 1 << 40, 6 << 40, 7 << 40, 0x800))
    g.add(("mmap", _dev(g), length, offset), "map")


def eventfd_io(g: Gen) -> None:
    """Read eventfds (signalled by SET_IRQS loopback triggers) and fault queues; write an
    eventfd (an ioeventfd registered on it writes its data into the BAR at once)."""
    roll = g.r.random()
    if roll < 0.45:
        g.add(("read", g.fd("eventfd", "fault"), g.pick((8, 8, 4, 16, 0))))
    elif roll < 0.75:
        g.add(("write", g.fd("eventfd"), struct.pack("<Q", 1)[: g.pick((8, 8, 4))]))
    else:
        g.add(("write", g.fd("fault"), struct.pack("<QQQQ", 0, 0, 0, 0)[: g.pick((32, 16, 0))]))


FAMILIES: list[tuple[float, Any]] = [
    (3, device_info), (4, region_info), (3, irq_info), (4, set_irqs), (1, reset),
    (2, hot_reset_info), (1.5, hot_reset), (2, ioeventfd), (3, feature), (0.5, gfx),
    (1, device_unknown), (1, bind), (1, attach), (1, detach), (4, config_read),
    (2.5, config_write), (3, bar_read), (2, bar_write), (2, mmap_ops), (2, eventfd_io),
]
