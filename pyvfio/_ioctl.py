"""Helpers shared by the object modules: one traced ioctl call, info queries, capability chains.

VFIO "INFO" ioctls report capabilities after their fixed struct.  When the caller's buffer is too
small the kernel still succeeds, sets the CAPS flag, raises ``argsz`` to the size it needs and
leaves ``cap_offset`` 0 (vfio_pci_core.c:vfio_pci_ioctl_get_info, vfio_iommu_type1.c:
vfio_iommu_type1_get_info); :func:`query_info` then asks again with the larger buffer.
"""

from __future__ import annotations

import fcntl
import logging
import struct
from dataclasses import dataclass

from pyvfio._ffi import CData, ffi, set_field, sizeof
from pyvfio.kernel import _OWNING, Kernel, LinuxKernel, _recent, owning_buffer

_fcntl_ioctl = fcntl.ioctl

log = logging.getLogger("pyvfio")
_debug, _DEBUG = log.isEnabledFor, logging.DEBUG
# isEnabledFor's own answers (a dict logging clears in place on every setLevel/disable,
# logging/__init__.py:Manager._clear_cache): one dict lookup instead of a method call per ioctl
_cached_level = getattr(log, "_cache", {}).get

MAX_INFO_SIZE = 1 << 20
"""The largest info buffer pyvfio will allocate on the kernel's request."""
_TRIES = 4
_CAP_HEADER = struct.Struct("<HHI")


def ioctl_name(request: int) -> str:
    """Return the kernel name of ``request`` (an :class:`pyvfio.uapi.Ioctl`) or its number."""
    return getattr(request, "name", None) or f"ioctl {int(request):#x}"


def call(kernel: Kernel, fd: int, request: int, arg: CData | int = 0) -> int:
    """Issue one ioctl through ``kernel`` and log it at DEBUG level.

    Returns:
        The ioctl's (non-negative) result.

    Raises:
        OSError: the kernel's errno, unchanged, with the ioctl's name as filename.
    """
    if _cached_level(10) is not False and _debug(_DEBUG):  # 10: logging.DEBUG
        return _logged(kernel, fd, request, arg)
    if type(kernel) is LinuxKernel:
        # LinuxKernel.ioctl's hot path, a frame less: the wrapper costs <= 1.5x a raw
        # fcntl.ioctl (tools/bench part 1).  Any other kernel (the fake) gets the same struct.
        s0, s1 = _recent  # owning_buffer's two slots, looked at here first: a frame less again
        if s0[0] is arg:
            buf = s0[1]
        elif s1[0] is arg:
            buf = s1[1]
        elif type(arg) is _OWNING:
            buf = owning_buffer(arg)
        else:
            return kernel.ioctl(fd, request, arg)
        try:
            rc: int = _fcntl_ioctl(fd, request, buf)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, ioctl_name(request)) from None
        except ValueError:  # fcntl's answer to a negative fd; LinuxKernel.ioctl says EBADF
            return kernel.ioctl(fd, request, arg)
        return rc
    return kernel.ioctl(fd, request, arg)


def _logged(kernel: Kernel, fd: int, request: int, arg: CData | int) -> int:
    try:
        rc = kernel.ioctl(fd, request, arg)
    except OSError as exc:
        log.debug("%s fd=%d -> errno %s", ioctl_name(request), fd, exc.errno)
        raise
    log.debug("%s fd=%d -> %d", ioctl_name(request), fd, rc)
    return rc


def query_info(
    kernel: Kernel, fd: int, request: int, ctype: str, **fields: int
) -> tuple[CData, bytes]:
    """Issue a VFIO info ioctl, re-asking with the ``argsz`` the kernel requested.

    Args:
        kernel: the kernel to ask.
        fd: the container or device fd.
        request: the info ioctl (``VFIO_DEVICE_GET_INFO``, ...).
        ctype: its struct pointer type, whose first field is ``argsz``.
        **fields: input fields (``index`` for region and irq info).

    Returns:
        The struct (a view of the buffer) and the whole buffer's bytes, capabilities included.

    Raises:
        OSError: the kernel's errno.
        ValueError: the kernel asked for more than :data:`MAX_INFO_SIZE` bytes.
    """
    size = sizeof(ctype)
    for _ in range(_TRIES):
        buf = bytearray(size)
        info = ffi.from_buffer(ctype, buf)
        info.argsz = size
        for name, value in fields.items():
            set_field(info, name, value)
        call(kernel, fd, request, info)
        if info.argsz <= size:
            break
        if info.argsz > MAX_INFO_SIZE:
            raise ValueError(f"{ioctl_name(request)}: kernel asked for argsz {info.argsz}")
        size = int(info.argsz)
    return info, bytes(buf)


@dataclass(frozen=True)
class Capability:
    """One entry of a VFIO capability chain, undecoded.

    Attributes:
        id: capability id (its meaning depends on the info ioctl).
        version: capability version.
        offset: offset of its header from the start of the info buffer.
        data: its bytes, header included, up to the next capability or the end of the buffer.
    """

    id: int
    version: int
    offset: int
    data: bytes


def walk_caps(buf: bytes, cap_offset: int, header_size: int) -> list[Capability]:
    """Walk the capability chain of an info buffer, refusing any malformed chain.

    The kernel appends capabilities in order (vfio_main.c:vfio_info_cap_add), so each ``next``
    must point forward, past the current header and inside the buffer; anything else (a loop, a
    backwards or outside pointer) is rejected instead of followed.

    Args:
        buf: the whole info buffer.
        cap_offset: offset of the first capability, 0 for none.
        header_size: size of the info struct; no capability may start inside it.

    Returns:
        The capabilities in chain order.

    Raises:
        ValueError: a capability offset is inside the info struct, unaligned, outside the buffer,
            or does not point forward.
    """
    caps: list[Capability] = []
    offset, floor = cap_offset, header_size
    while offset:
        if offset < floor or offset % 4 or offset + _CAP_HEADER.size > len(buf):
            raise ValueError(
                f"malformed capability chain: offset {offset} (expected {floor} <= offset "
                f"<= {len(buf) - _CAP_HEADER.size}, 4-byte aligned)"
            )
        cap_id, version, nxt = _CAP_HEADER.unpack_from(buf, offset)
        end = nxt if offset < nxt <= len(buf) else len(buf)
        caps.append(Capability(cap_id, version, offset, bytes(buf[offset:end])))
        offset, floor = nxt, offset + _CAP_HEADER.size
    return caps


def cap_struct(ctype: str, cap: Capability) -> CData:
    """Return a read-only view of ``cap`` as ``ctype`` (zero-padded if the capability is short)."""
    need = sizeof(ctype)
    data = cap.data if len(cap.data) >= need else cap.data + bytes(need - len(cap.data))
    return ffi.from_buffer(ctype, data)


def int_fields(obj: CData) -> dict[str, int]:
    """Return the integer fields of a struct (headers, arrays and pads left out)."""
    out: dict[str, int] = {}
    for name, field in ffi.typeof(obj).item.fields:
        if field.type.kind == "primitive" and name not in ("pad", "reserved", "__reserved"):
            out[name] = int(getattr(obj, name))
    return out
