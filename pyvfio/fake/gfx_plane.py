"""VFIO_DEVICE_QUERY_GFX_PLANE as the sample mdev drivers answer it (mdpy.c, mbochs.c).

Both copy in ``struct vfio_device_gfx_plane_info`` up to ``region_index`` (60 bytes: EINVAL when
``argsz`` is smaller), then: a PROBE is 0 for exactly ``PROBE | <their kind>`` and EINVAL for
anything else; a query must name exactly their kind (EINVAL otherwise); the answer is copied
back, those 60 bytes.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable

from pyvfio._ffi import C
from pyvfio.fake.memory import kerr
from pyvfio.fake.uaccess import IoctlArg

MINSZ = 60  # offsetofend(struct vfio_device_gfx_plane_info, region_index)
# argsz, flags, drm_plane_type, drm_format, drm_format_mod, width, height, stride, size,
# x_pos, y_pos, x_hot, y_hot, region_index/dmabuf_id
PLANE = struct.Struct("<IIIIQIIIIIIIII")
DRM_PLANE_TYPE_PRIMARY = 1
DRM_FORMAT_XRGB8888 = 0x34325258


def query(arg: IoctlArg, kind: int, fill: Callable[[int], tuple[int, ...]]) -> int:
    """Answer a QUERY_GFX_PLANE for a driver of plane ``kind``; ``fill(drm_plane_type)``
    returns (drm_format, width, height, stride, size, region_index or dmabuf_id)."""
    fields = list(PLANE.unpack(arg.read(0, MINSZ)))
    argsz, flags, plane_type = fields[0], fields[1], fields[2]
    if argsz < MINSZ:
        raise kerr(errno.EINVAL)
    if flags & C.VFIO_GFX_PLANE_TYPE_PROBE:
        if flags == C.VFIO_GFX_PLANE_TYPE_PROBE | kind:
            return 0
        raise kerr(errno.EINVAL)
    if flags != kind:
        raise kerr(errno.EINVAL)
    drm_format, width, height, stride, size, index = fill(plane_type)
    fields[3:] = [drm_format, 0, width, height, stride, size, 0, 0, 0, 0, index]
    arg.write(0, PLANE.pack(*fields))
    return 0
