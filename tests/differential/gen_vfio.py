"""Op families of the VFIO fds: the legacy container (type1, type1v2, noiommu), groups, devices.

Each family appends one op (or a few) to a :class:`~tests.differential.gen.Gen`; the layouts
are those of the 6.12 uAPI headers (reference/struct-layouts-x86_64-6.12.txt), packed by hand so
that malformed arguments are as easy to make as well-formed ones.
"""

from __future__ import annotations

import struct
from typing import Any

from pyvfio import uapi
from tests.differential import arena
from tests.differential.gen import U64, Gen
from tests.differential.runner import FD_RET

IOMMU_TYPE = {"type1v2": 3, "type1": 1, "noiommu": 8}
CONTAINER = ("container",)
DEVICE = ("device", "cdev")
# edu registers whose writes have no timing-dependent effect (0x08 starts a factorial thread,
# 0x60 raises an interrupt, 0x98 starts a DMA): liveness, status, irq ack, DMA addresses, holes
EDU_SAFE_WRITES = (0x04, 0x20, 0x64, 0x80, 0x88, 0x90, 0x100, 0x1000, 0xFFFFC)
BAR0 = 0
CONFIG = 7 << 40


def _dev_index(g: Gen) -> int:
    return 0 if g.chance(0.88) else g.r.randrange(len(g.bdfs))


def open_group(g: Gen, k: int | None = None) -> int:
    k = _dev_index(g) if k is None else k
    return g.add(("open", f"group:{k}"), "group")


def set_container(g: Gen, group: int | None = None, container: int | None = None) -> None:
    data = bytearray(4)
    patches: list[Any] = []
    c = container if container is not None else g.fd("container", "iommu")
    g.fd_patch(data, 0, c, patches)
    gr = group if group is not None else g.fd("group")
    g.ioctl(gr, uapi.VFIO_GROUP_SET_CONTAINER, data, patches)


def set_iommu(g: Gen, fd: int | None = None) -> None:
    t = IOMMU_TYPE.get(g.mode, 3 if g.chance(0.5) else 1)
    if g.chance(0.2):
        t = g.pick((0, 1, 2, 3, 4, 6, 7, 8, 9, 99))
    g.add(("ioctl", g.fd(*CONTAINER) if fd is None else fd, uapi.VFIO_SET_IOMMU, t, None))


def get_device_fd(g: Gen, group: int | None = None, k: int | None = None) -> None:
    k = _dev_index(g) if k is None else k
    name = g.bdfs[k % len(g.bdfs)]
    if g.chance(0.25):
        name = g.pick((
            name.upper(), name[5:], name + " ", name + "\n", "", "0000:00:1f.0", "vfio",
            name + " vf_token=00000000-0000-0000-0000-000000000000", name + "x",
            " " + name, name + "\0junk", name[:-1], "0000:00:00.0", "a" * 5000,
        ))
    g.ioctl(g.fd("group") if group is None else group, uapi.VFIO_GROUP_GET_DEVICE_FD,
            name.encode()[:8000] + b"\0", ret=FD_RET, kind="device")


def preamble_legacy(g: Gen) -> None:
    """open container, open group, SET_CONTAINER, SET_IOMMU, GET_DEVICE_FD; steps may slip."""
    skip = 0.06
    c = g.add(("open", "container"), "container")
    if g.chance(0.05):
        g.add(("open", "container"), "container")
    k = _dev_index(g)
    gr = open_group(g, k)
    if g.chance(0.05):
        open_group(g, k)
    early_iommu = g.chance(0.05)
    if early_iommu:
        set_iommu(g, c)
    if not g.chance(skip):
        set_container(g, gr, c)
    if g.chance(0.15):
        other = open_group(g)
        set_container(g, other, c)
    if not g.chance(skip) and not early_iommu:
        set_iommu(g, c)
    if not g.chance(skip):
        get_device_fd(g, gr, k)


# -- container ---------------------------------------------------------------------------------


def api_version(g: Gen) -> None:
    g.add(("ioctl", g.fd(*CONTAINER), uapi.VFIO_GET_API_VERSION, 0, None))


def check_extension(g: Gen) -> None:
    ext = g.pick((1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 0x7FFFFFFF))
    g.add(("ioctl", g.fd(*CONTAINER), uapi.VFIO_CHECK_EXTENSION, ext, None))


def iommu_get_info(g: Gen) -> None:
    argsz = g.vfio_argsz(16, 24, big=g.pick((0x78, 0x100, 0x58, 0x48)))
    data = struct.pack("<IIQII", argsz, g.pick((0, 0, 3, 0xFFFFFFFF)), 0, 0, 0)
    g.ioctl(g.fd(*CONTAINER), uapi.VFIO_IOMMU_GET_INFO, data)


def map_dma(g: Gen) -> None:
    flags = g.pick((3, 3, 3, 1, 2, 0, 4, 7, 8, 0x80000003))
    iova, size = g.iova(), g.length()
    if g.chance(0.5):
        size = g.pick((0x1000, 0x2000, 0x200000, 0x10000))
    argsz = g.vfio_argsz(32, 32)
    data = bytearray(struct.pack("<IIQQQ", argsz, flags, 0, iova, size))
    patches: list[Any] = []
    g.addr_patch(data, 8, g.vaddr(), patches) if not g.chance(0.05) else None
    g.iovas.append((iova, size))
    g.ioctl(g.fd(*CONTAINER), uapi.VFIO_IOMMU_MAP_DMA, data, patches)


def _bitmap(g: Gen, data: bytearray, off: int, patches: list[Any], watch: list[Any]) -> None:
    """A struct vfio_bitmap at ``off``: pgsize, size, data pointer into AUX."""
    pgsize = g.pick((4096, 4096, 8192, 0, 1 << 21, 0x800))
    size = g.pick((8, 64, 512, 0, 4096, 1 << 40))
    struct.pack_into("<QQ", data, off, pgsize, size)
    g.addr_patch(data, off + 16, arena.AUX, patches)
    watch.append((arena.AUX, bytes([0x5A] * 16), 4096))


def unmap_dma(g: Gen) -> None:
    flags = g.pick((0, 0, 0, 2, 2, 4, 1, 6, 8, 0x80000000))
    iova, size = g.iova(), g.length()
    if flags & 2 and g.chance(0.7):
        iova = size = 0
    data = bytearray(struct.pack("<IIQQ", 0, flags, iova, size))
    patches: list[Any] = []
    watch: list[Any] = []
    if flags & 1 or g.chance(0.05):
        data += bytes(24)
        _bitmap(g, data, 24, patches, watch)
    struct.pack_into("<I", data, 0, g.vfio_argsz(24, len(data)))
    g.ioctl(g.fd(*CONTAINER), uapi.VFIO_IOMMU_UNMAP_DMA, data, patches, tuple(watch))


def dirty_pages(g: Gen) -> None:
    flags = g.pick((1, 2, 4, 4, 0, 3, 5, 8, 0x80))
    data = bytearray(struct.pack("<II", 0, flags))
    patches: list[Any] = []
    watch: list[Any] = []
    if flags & 4 or g.chance(0.1):
        data += struct.pack("<QQ", g.iova(), g.length()) + bytes(24)
        _bitmap(g, data, 24, patches, watch)
    struct.pack_into("<I", data, 0, g.vfio_argsz(8, len(data)))
    g.ioctl(g.fd(*CONTAINER), uapi.VFIO_IOMMU_DIRTY_PAGES, data, patches, tuple(watch))


def container_unknown(g: Gen) -> None:
    nr = g.pick((0x73, 0x74, 0x79, 0x76, 0x77, 0x63, 0x7A, 0x7F, 0x6B))
    g.ioctl(g.fd(*CONTAINER), 0x3B00 | nr, bytes(32))


# -- group -------------------------------------------------------------------------------------


def group_status(g: Gen) -> None:
    data = struct.pack("<II", g.vfio_argsz(8, 8), g.pick((0, 0, 3, 0xFFFFFFFF)))
    g.ioctl(g.fd("group"), uapi.VFIO_GROUP_GET_STATUS, data)


def unset_container(g: Gen) -> None:
    g.add(("ioctl", g.fd("group"), uapi.VFIO_GROUP_UNSET_CONTAINER, 0, None))


def group_misc(g: Gen) -> None:
    roll = g.r.random()
    if roll < 0.4:
        open_group(g)
    elif roll < 0.6:
        g.add(("open", g.pick(("/dev/vfio/9999", "/dev/vfio/noiommu-0", "/dev/vfio/devices/x"))))
    else:
        nr = g.pick((0x64, 0x65, 0x66, 0x6B, 0x70, 0x7F, 0x80))
        g.ioctl(g.fd("group"), 0x3B00 | nr, bytes(16))


# -- whatever the sequence opened --------------------------------------------------------------


def close_some(g: Gen) -> None:
    every = [i for v in g.h.values() for i in v]
    if every:
        g.add(("close", g.pick(every)))
        g.risky = True  # a closed device fd can mean a reset on the last close


def new_fds(g: Gen) -> None:
    roll = g.r.random()
    if roll < 0.5:
        g.add(("eventfd",), "eventfd")
    elif roll < 0.7:
        g.add(("foreign",), "foreign")
    else:
        g.add(("open", "container"), "container")


LEGACY_BASE: list[tuple[float, Any]] = [
    (1, api_version), (2, check_extension), (3, iommu_get_info), (6, map_dma), (5, unmap_dma),
    (2, dirty_pages), (1, container_unknown), (2, group_status), (1, unset_container),
    (2, group_misc), (2, lambda g: set_container(g)), (1.5, lambda g: set_iommu(g)),
    (2, lambda g: get_device_fd(g)), (1.5, close_some), (2, new_fds),
]


def _device_families() -> list[tuple[float, Any]]:
    from tests.differential import gen_device

    return gen_device.FAMILIES


LEGACY = LEGACY_BASE + _device_families()
COMPAT = LEGACY_BASE + _device_families()
CDEV = [(w, f) for w, f in _device_families()] + [(1.5, close_some), (2, new_fds)]
__all__ = ["LEGACY", "COMPAT", "CDEV", "U64"]
