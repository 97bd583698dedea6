"""Exact formats of the names pyvfio puts into sysfs paths: BDF, driver, group, UUID, mdev type.

Every name a user gives (and every name read back from sysfs before it becomes part of another path)
goes through one of these functions first, so no ``..``, ``/``, whitespace or shell syntax can reach
a path.  They raise ``ValueError`` naming the parameter, before any system call.
"""

from __future__ import annotations

import re
import uuid as _uuid

_BDF = re.compile(r"(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([0-1][0-9a-fA-F])\.([0-7])")
_DRIVER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_GROUP = re.compile(r"(?:noiommu-)?([0-9]{1,7})")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MDEV_TYPE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:+-]{0,127}")
_IFNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@+-]{0,63}")


def bdf(value: str, name: str = "bdf") -> str:
    """Return ``value`` as a canonical PCI address ``dddd:bb:dd.f`` (domain 0000 if omitted).

    Raises:
        ValueError: not a PCI address (``0000:00:03.0`` or ``00:03.0``).
    """
    m = _BDF.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"{name} must be a PCI address like 0000:00:03.0, not {value!r}")
    dom, bus, dev, fn = m.groups()
    return f"{(dom or '0000').lower()}:{bus.lower()}:{dev.lower()}.{fn}"


def is_bdf(value: str) -> bool:
    """Tell whether ``value`` is a full canonical PCI address (as sysfs names devices)."""
    return _BDF.fullmatch(value) is not None and value == bdf(value)


def driver(value: str, name: str = "driver") -> str:
    """Return ``value`` if it is a valid kernel driver name (``vfio-pci``, ``mlx5_vfio_pci``).

    Raises:
        ValueError: empty, too long, or contains characters a driver name never has.
    """
    if not isinstance(value, str) or _DRIVER.fullmatch(value) is None:
        raise ValueError(f"{name} must be a driver name like vfio-pci, not {value!r}")
    return value


def group(value: str | int, name: str = "group") -> int:
    """Return an IOMMU group number from ``5``, ``"5"`` or ``"noiommu-5"``.

    Raises:
        ValueError: not a non-negative group number.
    """
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**7:
        return value
    m = _GROUP.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"{name} must be an IOMMU group number like 5, not {value!r}")
    return int(m.group(1))


def uuid(value: str, name: str = "uuid") -> str:
    """Return ``value`` as a canonical lower-case UUID (as mdev ``create`` wants it).

    Raises:
        ValueError: not a UUID in 8-4-4-4-12 form.
    """
    low = value.lower() if isinstance(value, str) else ""
    if _UUID.fullmatch(low) is None:
        raise ValueError(f"{name} must be a UUID like 8-4-4-4-12 hex digits, not {value!r}")
    return str(_uuid.UUID(low))


def mdev_type(value: str, name: str = "type") -> str:
    """Return ``value`` if it is a valid mdev type directory name (``i915-GVTg_V5_4``).

    Raises:
        ValueError: contains a slash, whitespace or starts with a dot.
    """
    if not isinstance(value, str) or _MDEV_TYPE.fullmatch(value) is None:
        raise ValueError(f"{name} must be an mdev type name like i915-GVTg_V5_4, not {value!r}")
    return value


def kname(value: str, name: str = "name") -> str:
    """Return ``value`` if it is a safe kernel object name (net interface, block device).

    Raises:
        ValueError: contains a slash, whitespace, or starts with a dot.
    """
    if not isinstance(value, str) or _IFNAME.fullmatch(value) is None:
        raise ValueError(f"{name} is not a kernel object name: {value!r}")
    return value
