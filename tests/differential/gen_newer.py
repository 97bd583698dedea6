"""Op families of the uAPI newer than Linux 6.12, drawn only for a kernel that has them.

``families(g)`` lists the ones the sequence's kernel (``g.linux``) and mode have; on 6.12 it is
empty, so 6.12 sequences (and the fingerprints of their recordings) do not change.  Versions
(wave2-facts.md, from the merge-window pulls): IOAS_MAP_FILE, IOAS_CHANGE_PROCESS, VIOMMU_ALLOC and
VDEVICE_ALLOC 6.13; VEVENTQ_ALLOC, PASID attach/detach/replace on the device cdev and
HWPT_ALLOC_PASID 6.15; HW_QUEUE_ALLOC and the mmap of an iommufd 6.17; BIND_IOMMUFD's token flag
6.17; VFIO_DEVICE_FEATURE_DMA_BUF 6.19 (its dma-buf is an fd IOAS_MAP_FILE takes).  Layouts: the
7.3 uAPI headers (reference/struct-layouts-x86_64-7.3.txt); minimum sizes: iommufd main.c's
IOCTL_OP table, vfio device_cdev.c.
"""

from __future__ import annotations

import os
import struct
from typing import Any

from pyvfio import uapi
from tests.differential import arena
from tests.differential.gen import U64, Gen
from tests.differential.runner import FD_OR_ZERO, STALE

VIOMMU_TYPES = (0, 0, 1, 2, 3, 0xDEAD)  # DEFAULT, ARM_SMMUV3, TEGRA241_CMDQV, none, selftest
FEATURE_GET, FEATURE_SET, FEATURE_PROBE = 1 << 16, 1 << 17, 1 << 18


def _iommufd(g: Gen) -> int:
    return g.fd("iommu")


def _sized(g: Gen, request: int, minsz: int, body: bytearray, patches: list[Any] = (),
           watch: tuple[Any, ...] = (), ret: Any = None, kind: str | None = None) -> int:
    size, tail = g.iommufd_size(minsz, len(body))
    struct.pack_into("<I", body, 0, size)
    return g.ioctl(_iommufd(g), request, bytes(body) + tail, list(patches), watch, ret, kind)


# -- iommufd (6.13) ----------------------------------------------------------------------------


def memfd(g: Gen) -> int:
    """A memfd (the file IOAS_MAP_FILE maps), of a size around the lengths the maps use."""
    return g.add(("memfd", g.pick((0x200000, 0x200000, 0x10000, 0x1000, 0))), "memfd")


def _map_file_fd(g: Gen) -> int:
    """The file IOAS_MAP_FILE maps: a memfd or dma-buf mostly, else an eventfd, /dev/null, -1 or
    a closed fd.  Never a VFIO or iommufd fd: MAP_FILE of one succeeds while no domain is attached
    (the pin waits for a domain) and the IOAS then holds that file, which holds the iommufd (a
    bound cdev, a group set to it, a fault or vEVENTQ fd, the iommufd itself) -- a reference
    cycle Linux 7.3 never frees: the device stays bound to an iommufd nobody can close and its
    group answers EBUSY until reboot (seen in the lane: iommufd-7.3, iommufd seed 4242 of the
    first generator; every later sequence diverged)."""
    right = [i for k in ("memfd", "dmabuf") for i in g.h.get(k, ())]
    if right and g.chance(0.85):
        return int(g.pick(right))
    inert = [i for k in ("eventfd", "foreign") for i in g.h.get(k, ())]
    roll = g.r.random()
    if inert and roll < 0.6:
        return int(g.pick(inert))
    return -1 if roll < 0.8 else STALE


def ioas_map_file(g: Gen) -> None:
    """IOAS_MAP_FILE of a memfd (or a dma-buf, or another fd); half the time well-formed."""
    if not g.h.get("memfd") or g.chance(0.1):
        memfd(g)
    if g.chance(0.5):
        flags, start = g.pick((6, 6, 7, 2)), g.pick((0, 0, 0x1000))
        length = g.pick((0x1000, 0x2000, 0x10000))
        iova = g.pick((0x100000, 0x200000, 0x10000000)) if flags & 1 else 0
    else:
        flags = g.pick((6, 6, 7, 7, 4, 2, 0, 1, 8, 0x80000006))
        iova = g.iova()
        length = g.pick((0x1000, 0x2000, 0x10000, 0x200000, 0, 0x800, 0x400000, U64 - 0xFFF))
        start = g.pick((0, 0, 0, 0x1000, 0x800, 0x1F0000, 0x200000, U64 - 0xFFF))
    body = bytearray(struct.pack("<IIIiQQQ", 0, flags, 0, -1, start, length, iova))
    patches: list[Any] = []
    g.id_patch(body, 8, ("ioas",), patches)
    g.fd_patch(body, 12, _map_file_fd(g), patches)
    _sized(g, uapi.IOMMU_IOAS_MAP_FILE, 40, body, patches)
    g.iovas.append((iova, length))


def ioas_change_process(g: Gen) -> None:
    body = bytearray(struct.pack("<II", 0, g.pick((0, 0, 0, 0, 1))))
    _sized(g, uapi.IOMMU_IOAS_CHANGE_PROCESS, 8, body)


def viommu_alloc(g: Gen) -> None:
    dlen = g.pick((0, 0, 0, 8, 16))
    body = bytearray(struct.pack("<IIIIIIIIQ", 0, g.pick((0, 0, 0, 1)), g.pick(VIOMMU_TYPES),
                                 0, 0, 0, dlen, g.pick((0, 0, 0, 1)), 0))
    patches: list[Any] = []
    g.id_patch(body, 12, ("devid",), patches)
    g.id_patch(body, 16, ("hwpt", "ioas"), patches)
    watch: tuple[Any, ...] = ()
    if dlen or g.chance(0.1):
        g.addr_patch(body, 32, arena.AUX, patches)
        watch = ((arena.AUX, b"", 64),)
    i = _sized(g, uapi.IOMMU_VIOMMU_ALLOC, 24, body, patches, watch)
    g.ids["viommu"].append((i, 20))


def vdevice_alloc(g: Gen) -> None:
    body = bytearray(struct.pack("<IIIIQ", 0, 0, 0, 0, g.pick((0, 1, 0x1234, 1 << 32, U64))))
    patches: list[Any] = []
    g.id_patch(body, 4, ("viommu",), patches)
    g.id_patch(body, 8, ("devid",), patches)
    i = _sized(g, uapi.IOMMU_VDEVICE_ALLOC, 24, body, patches)
    g.ids["vdevice"].append((i, 12))


# -- iommufd (6.15, 6.17) ----------------------------------------------------------------------


def veventq_alloc(g: Gen) -> None:
    body = bytearray(struct.pack("<IIIIIIII", 0, g.pick((0, 0, 0, 1)), 0,
                                 g.pick((0, 1, 1, 2, 3, 0xDEAD)),
                                 g.pick((0, 1, 2, 64, 1 << 19, 1 << 20, 0xFFFFFFFF)), 0, 0,
                                 g.pick((0, 0, 0, 1))))
    patches: list[Any] = []
    g.id_patch(body, 8, ("viommu",), patches)
    i = _sized(g, uapi.IOMMU_VEVENTQ_ALLOC, 28, body, patches, ret=24, kind="veventq")
    g.ids["veventq"].append((i, 20))


def veventq_read(g: Gen) -> None:
    g.add(("read", g.fd("veventq", "fault"), g.pick((8, 16, 40, 4, 0, 4096))))


def hw_queue_alloc(g: Gen) -> None:
    body = bytearray(struct.pack("<IIIIIIQQ", 0, g.pick((0, 0, 0, 1)), 0, g.pick((0, 1, 1, 2)),
                                 g.pick((0, 0, 1, 0xFFFFFFFF)), 0, g.iova(),
                                 g.pick((0x1000, 0x20, 0x10000, 0, 0x1001, 1 << 40))))
    patches: list[Any] = []
    g.id_patch(body, 8, ("viommu",), patches)
    i = _sized(g, uapi.IOMMU_HW_QUEUE_ALLOC, 40, body, patches)
    g.ids["hw_queue"].append((i, 20))


def iommufd_mmap(g: Gen) -> None:
    """mmap of an iommufd (6.17): only an offset a HW queue handed out maps; any other is ENXIO,
    an unaligned length EINVAL."""
    g.add(("mmap", g.fd("iommu"), g.pick((4096, 4096, 8192, 0x10000, 0x800)),
           g.pick((0, 0, 4096, 1 << 32, 0x800))))


def hwpt_alloc_pasid(g: Gen) -> None:
    """HWPT_ALLOC with IOMMU_HWPT_ALLOC_PASID (6.15), alone or with the other flags."""
    flags = g.pick((8, 8, 8, 8 | 2, 8 | 1, 8 | 4, 8 | 0x10))
    body = bytearray(struct.pack("<IIIIIIIIQII", 0, flags, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    patches: list[Any] = []
    g.id_patch(body, 8, ("devid",), patches)
    g.id_patch(body, 12, ("ioas", "hwpt"), patches)
    if flags & 4:
        g.id_patch(body, 40, ("fault",), patches)
    i = _sized(g, uapi.IOMMU_HWPT_ALLOC, 24, body, patches)
    g.ids["hwpt"].append((i, 16))


# -- the device (cdev 6.15, features 6.19) -----------------------------------------------------

PASIDS = (0, 1, 1, 2, 0x1000, 0xFFFFF, 0x100000, 0xFFFFFFFF)


def pasid_attach(g: Gen) -> None:
    """ATTACH_IOMMUFD_PT with VFIO_DEVICE_ATTACH_PASID: attach, or replace when attached."""
    data = bytearray(struct.pack("<IIII", g.vfio_argsz(12, 16), g.pick((1, 1, 1, 1, 3, 0)), 0,
                                 g.pick(PASIDS)))
    patches: list[Any] = []
    g.id_patch(data, 8, ("hwpt", "ioas"), patches)
    i = g.ioctl(g.fd("cdev", "device"), uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, data, patches)
    g.ids["hwpt"].append((i, 8))


def pasid_detach(g: Gen) -> None:
    data = struct.pack("<III", g.vfio_argsz(8, 12), g.pick((1, 1, 1, 3)), g.pick(PASIDS))
    g.ioctl(g.fd("cdev", "device"), uapi.VFIO_DEVICE_DETACH_IOMMUFD_PT, data)


def bind_token(g: Gen) -> None:
    """BIND_IOMMUFD with VFIO_DEVICE_BIND_FLAG_TOKEN (6.17) and a UUID behind token_uuid_ptr."""
    data = bytearray(struct.pack("<IIiIQ", g.vfio_argsz(16, 24), g.pick((1, 1, 1, 3, 0)), -1, 0,
                                 0))
    patches: list[Any] = []
    g.fd_patch(data, 8, g.fd("iommu", p_right=0.85), patches)
    watch: tuple[Any, ...] = ()
    if g.chance(0.9):
        g.addr_patch(data, 16, g.pick((arena.AUX, arena.AUX, arena.NONE, arena.RO)), patches)
        uuid = g.pick((bytes(16), bytes(range(16)), b"\xff" * 16))
        watch = ((arena.AUX, uuid, 16),)
    i = g.ioctl(g.fd("cdev", "device"), uapi.VFIO_DEVICE_BIND_IOMMUFD, data, patches, watch)
    g.ids["devid"].append((i, 12))


def dma_buf(g: Gen) -> None:
    """VFIO_DEVICE_FEATURE_DMA_BUF (6.19): a dma-buf of BAR ranges (an fd on GET)."""
    if g.chance(0.5):  # well-formed: one page-aligned range of BAR0
        ops, nr = FEATURE_GET, 1
        payload = bytearray(struct.pack("<IIIIQQ", 0, os.O_RDWR | os.O_CLOEXEC, 0, 1,
                                        g.pick((0, 0, 0x1000, 0x80000)),
                                        g.pick((0x1000, 0x1000, 0x2000, 0x10000))))
    else:
        ops = g.pick((FEATURE_GET, FEATURE_GET, FEATURE_PROBE | FEATURE_GET, FEATURE_PROBE,
                      FEATURE_SET, 0))
        nr = g.pick((1, 1, 1, 0, 2, 3, 0xFFFFFFFF))
        open_flags = g.pick((os.O_RDWR | os.O_CLOEXEC, os.O_CLOEXEC, 0, os.O_WRONLY,
                             0xFFFFFFFF))
        payload = bytearray(struct.pack("<IIII", g.pick((0, 0, 0, 1, 2, 5, 7, 9)), open_flags,
                                        g.pick((0, 0, 0, 1)), nr))
        for _ in range(min(nr, 3)):
            payload += struct.pack("<QQ", g.pick((0, 0, 0x1000, 0x800, 0x100000, U64 - 0xFFF)),
                                   g.pick((0x1000, 0x1000, 0x100000, 0x2000, 0, 0x800,
                                           0x200000)))
    data = bytearray(struct.pack("<II", 0, 11 | ops)) + payload
    argsz = len(data) if g.chance(0.85) else g.pick((0, 8, 16, 24, len(data) - 8, len(data) + 8))
    struct.pack_into("<I", data, 0, argsz)
    g.ioctl(g.fd("device", "cdev"), uapi.VFIO_DEVICE_FEATURE, data, ret=FD_OR_ZERO,
            kind="dmabuf")


def dmabuf_ops(g: Gen) -> None:
    """What else a dma-buf fd meets: close (revocation happens on the device side), mmap."""
    if g.h.get("dmabuf") and g.chance(0.5):
        g.add(("close", g.pick(g.h["dmabuf"])))
    else:
        g.add(("mmap", g.fd("dmabuf"), 4096, 0))


# (weight, family, since, modes)
NEWER: list[tuple[float, Any, str, tuple[str, ...]]] = [
    (3, ioas_map_file, "6.13", ("iommufd", "compat")),
    (1, ioas_change_process, "6.13", ("iommufd", "compat")),
    (2.5, viommu_alloc, "6.13", ("iommufd",)),
    (1.5, vdevice_alloc, "6.13", ("iommufd",)),
    (1.5, veventq_alloc, "6.15", ("iommufd",)),
    (1, veventq_read, "6.15", ("iommufd",)),
    (1.5, hwpt_alloc_pasid, "6.15", ("iommufd",)),
    (2, pasid_attach, "6.15", ("iommufd",)),
    (1.5, pasid_detach, "6.15", ("iommufd",)),
    (1, hw_queue_alloc, "6.17", ("iommufd",)),
    (1, iommufd_mmap, "6.17", ("iommufd", "compat")),
    (1, bind_token, "6.17", ("iommufd",)),
    (2, dma_buf, "6.19", ("type1v2", "type1", "iommufd", "compat", "noiommu")),
    (1, dmabuf_ops, "6.19", ("type1v2", "type1", "iommufd", "compat", "noiommu")),
]


def families(g: Gen) -> list[tuple[float, Any]]:
    """The families ``g``'s kernel and mode have beyond 6.12 (none on 6.12)."""
    return [(w, f) for w, f, since, modes in NEWER if g.mode in modes and g.since(since)]
