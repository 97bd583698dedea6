"""Mediated devices: parents and types with available instances, create and remove by UUID.

Layout (drivers/vfio/mdev): ``/sys/class/mdev_bus/<parent>`` links to each parent device, whose
``mdev_supported_types/<type>/`` holds ``name``, ``description``, ``device_api``,
``available_instances``, ``create`` and ``devices/``; a created mdev is
``/sys/bus/mdev/devices/<uuid>`` with ``mdev_type`` and ``remove``.
"""

from __future__ import annotations

import posixpath
import uuid as _uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from pyvfio.host import validate
from pyvfio.kernel import Kernel


@dataclass(frozen=True)
class MdevType:
    """One type a parent offers."""

    parent: str
    type: str
    name: str | None
    description: str | None
    device_api: str | None
    available: int | None
    devices: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["devices"] = list(self.devices)
        return d


def _read(kernel: Kernel, path: str) -> str | None:
    try:
        return kernel.sysfs_read(path)
    except OSError:
        return None


def parents(kernel: Kernel) -> list[str]:
    """Return the names of mdev-capable parent devices."""
    try:
        return kernel.sysfs_listdir("class/mdev_bus")
    except OSError:
        return []


def types(kernel: Kernel, parent: str | None = None) -> list[MdevType]:
    """Return the types of ``parent`` (or of every parent)."""
    out = []
    for name in [parent] if parent else parents(kernel):
        p = validate.kname(name, "parent")
        base = f"class/mdev_bus/{p}/mdev_supported_types"
        try:
            names = kernel.sysfs_listdir(base)
        except OSError:
            continue
        for t in names:
            d = f"{base}/{validate.mdev_type(t)}"
            avail = _read(kernel, f"{d}/available_instances")
            try:
                devs = tuple(kernel.sysfs_listdir(f"{d}/devices"))
            except OSError:
                devs = ()
            out.append(MdevType(p, t, _read(kernel, f"{d}/name"), _read(kernel, f"{d}/description"),
                                _read(kernel, f"{d}/device_api"),
                                int(avail) if avail and avail.isdigit() else None, devs))
    return out


def devices(kernel: Kernel) -> list[dict[str, str | None]]:
    """Return the existing mdevs: uuid, type and parent."""
    try:
        names = kernel.sysfs_listdir("bus/mdev/devices")
    except OSError:
        return []
    out: list[dict[str, str | None]] = []
    for n in names:
        base = f"bus/mdev/devices/{validate.uuid(n)}"
        try:
            t: str | None = posixpath.basename(kernel.sysfs_readlink(f"{base}/mdev_type"))
            # bus/mdev/devices/<uuid> -> ../../../devices/<path of the parent>/<uuid>
            parent: str | None = posixpath.basename(
                posixpath.dirname(kernel.sysfs_readlink(base)))
        except OSError:
            t = parent = None
        out.append({"uuid": n, "type": t, "parent": parent})
    return out


def create(kernel: Kernel, parent: str, mdev_type: str, uuid: str | None = None) -> str:
    """Create an mdev of ``mdev_type`` on ``parent``; return its UUID.

    Raises:
        ValueError: malformed parent, type or UUID.
        OSError: the kernel's errno from ``create``: EEXIST a UUID some mdev has, EUSERS no
            instance left (parents counting instances in the mdev core), the driver's own errno
            when it refuses (mtty: ENOSPC, too few free ports), ENOENT no such parent or type.
    """
    parent, mdev_type = validate.kname(parent, "parent"), validate.mdev_type(mdev_type)
    u = validate.uuid(uuid) if uuid else str(_uuid.uuid4())
    kernel.sysfs_write(f"class/mdev_bus/{parent}/mdev_supported_types/{mdev_type}/create", u)
    return u


def remove(kernel: Kernel, uuid: str) -> None:
    """Remove the mdev ``uuid``.

    Raises:
        ValueError: malformed UUID.
        OSError: ENOENT no such mdev.  While a VFIO user holds the mdev the kernel's remove
            waits for it to close the device (drivers without a ``request`` op, e.g. mtty, wait
            until it does).
    """
    kernel.sysfs_write(f"bus/mdev/devices/{validate.uuid(uuid)}/remove", "1")
