"""Mediated display planes: VFIO_DEVICE_QUERY_GFX_PLANE and VFIO_DEVICE_GET_GFX_DMABUF.

A vGPU-style mdev shows its guest's display as a *plane*: either a region of the device
(``VFIO_GFX_PLANE_TYPE_REGION``, as samples/vfio-mdev/mdpy.c does: read or mmap the region
``plane.region_index``) or a dma-buf (``VFIO_GFX_PLANE_TYPE_DMABUF``, as mbochs.c and i915's
GVT-g do: :meth:`Display.dmabuf` turns ``plane.dmabuf_id`` into an fd).  The ioctls belong to the
mdev driver (vfio_main.c hands them to ``ops->ioctl``), so their rules are the driver's; the ones
below are those of Linux 7.3's samples, which the fake models (pyvfio/fake/mdpy.py, mbochs.py):

- a PROBE (``VFIO_GFX_PLANE_TYPE_PROBE | kind``) answers 0 for the driver's kind, EINVAL for the
  other; a device without display planes (vfio-pci, mtty) answers ENOTTY;
- a query of the driver's kind fills the plane; mbochs answers a zero plane (``empty``) while the
  guest has no valid framebuffer set up, and only for ``DRM_PLANE_TYPE_PRIMARY``.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from pyvfio._resource import FdOwner
from pyvfio.device import Device

PROBE, DMABUF, REGION = (C.VFIO_GFX_PLANE_TYPE_PROBE, C.VFIO_GFX_PLANE_TYPE_DMABUF,
                         C.VFIO_GFX_PLANE_TYPE_REGION)
DRM_PLANE_TYPE_OVERLAY, DRM_PLANE_TYPE_PRIMARY, DRM_PLANE_TYPE_CURSOR = 0, 1, 2  # drm_mode.h
DRM_FORMAT_XRGB8888 = 0x34325258  # fourcc "XR24" (drm_fourcc.h)
_KINDS: dict[str, int] = {"region": int(REGION), "dmabuf": int(DMABUF)}


@dataclass(frozen=True)
class Plane:
    """One answer of VFIO_DEVICE_QUERY_GFX_PLANE (struct vfio_device_gfx_plane_info)."""

    kind: str  # "region" or "dmabuf"
    drm_plane_type: int
    drm_format: int  # a DRM fourcc, 0 when there is no plane
    drm_format_mod: int
    width: int
    height: int
    stride: int  # bytes per line
    size: int  # bytes
    x_pos: int
    y_pos: int
    x_hot: int
    y_hot: int
    region_index: int  # kind "region": the region holding the plane
    dmabuf_id: int  # kind "dmabuf": the id to pass to Display.dmabuf

    @property
    def empty(self) -> bool:
        """True when the device shows nothing (no format, no size)."""
        return not self.drm_format and not self.size


def _kind(kind: str) -> int:
    if kind not in _KINDS:
        raise ValueError(f"kind must be 'region' or 'dmabuf', not {kind!r}")
    return _KINDS[kind]


class Display:
    """The display planes of an open mdev ``device`` (a :class:`pyvfio.device.Device`)."""

    def __init__(self, device: Device) -> None:
        self.device = device

    def supports(self, kind: str) -> bool:
        """PROBE: True when the device offers planes of ``kind`` ("region" or "dmabuf");
        False when it answers EINVAL (the other kind) or ENOTTY (no display planes at all).

        Raises:
            ValueError: an unknown ``kind``.
            OSError: any other errno of the driver (EFAULT).
        """
        info = new("struct vfio_device_gfx_plane_info *", flags=PROBE | _kind(kind))
        try:
            self.device._call(uapi.VFIO_DEVICE_QUERY_GFX_PLANE, info)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOTTY):
                return False
            raise
        return True

    def query(self, kind: str, plane_type: int = DRM_PLANE_TYPE_PRIMARY) -> Plane:
        """VFIO_DEVICE_QUERY_GFX_PLANE for a plane of ``kind`` and DRM ``plane_type``.

        Raises:
            ValueError: an unknown ``kind``, a ``plane_type`` that is no DRM plane type.
            OSError: ENOTTY (no display planes), EINVAL (the device offers the other kind),
                ENOMEM (mbochs of Linux 6.x-7.3 answers the first query of a new mode so: its
                query drops the buffer it allocates, the next query finds it — query again).
        """
        if plane_type not in (DRM_PLANE_TYPE_OVERLAY, DRM_PLANE_TYPE_PRIMARY,
                              DRM_PLANE_TYPE_CURSOR):
            raise ValueError(f"plane_type must be a DRM_PLANE_TYPE_*, not {plane_type!r}")
        info = new("struct vfio_device_gfx_plane_info *", flags=_kind(kind),
                   drm_plane_type=plane_type)
        self.device._call(uapi.VFIO_DEVICE_QUERY_GFX_PLANE, info)
        return Plane(kind, plane_type, info.drm_format, info.drm_format_mod, info.width,
                     info.height, info.stride, info.size, info.x_pos, info.y_pos, info.x_hot,
                     info.y_hot, info.region_index if kind == "region" else 0,
                     info.dmabuf_id if kind == "dmabuf" else 0)

    def dmabuf(self, plane: Plane | int) -> GfxDmaBuf:
        """VFIO_DEVICE_GET_GFX_DMABUF: a dma-buf fd of ``plane`` (or a dmabuf id).

        Raises:
            ValueError: a region plane, or an id outside u32.
            OSError: ENOTTY (no dma-buf planes), ENOENT (no buffer of that id), EINVAL (the
                driver cannot export it: mbochs refuses a framebuffer not page-aligned).
        """
        if isinstance(plane, Plane) and plane.kind != "dmabuf":
            raise ValueError("a region plane has no dma-buf: read its region")
        dmabuf_id = plane.dmabuf_id if isinstance(plane, Plane) else plane
        if not isinstance(dmabuf_id, int) or not 0 <= dmabuf_id < 1 << 32:
            raise ValueError(f"dmabuf_id must be a u32, not {dmabuf_id!r}")
        arg = ffi.new("uint32_t *", dmabuf_id)
        fd = self.device._call(uapi.VFIO_DEVICE_GET_GFX_DMABUF, arg)
        return GfxDmaBuf(self.device, dmabuf_id, fd)


class GfxDmaBuf(FdOwner):
    """A dma-buf fd of a display plane (close it, or use it as a context manager)."""

    def __init__(self, device: Device, dmabuf_id: int, fd: int) -> None:
        self.device, self.dmabuf_id = device, dmabuf_id
        self._own(device._kernel, fd)

    def __repr__(self) -> str:
        return f"<GfxDmaBuf id={self.dmabuf_id} fd={self._fd}>"


__all__ = ["DMABUF", "DRM_FORMAT_XRGB8888", "DRM_PLANE_TYPE_CURSOR", "DRM_PLANE_TYPE_OVERLAY",
           "DRM_PLANE_TYPE_PRIMARY", "PROBE", "REGION", "Display", "GfxDmaBuf", "Plane"]
