"""Exact formats of what users give: BDF, driver, group, UUID, mdev type, user, time limits.

Every name a user gives (and every name read back from sysfs before it becomes part of another path)
goes through one of these functions first, so no ``..``, ``/``, whitespace or shell syntax can reach
a path.  They raise ``ValueError`` naming the parameter, before any system call, quoting at most
60 characters of the bad value.
"""

from __future__ import annotations

import math
import re
import uuid as _uuid

from pyvfio.sysfs import check_bdf

_DRIVER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_GROUP = re.compile(r"(?:noiommu-)?([0-9]{1,7})")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MDEV_TYPE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:+-]{0,127}")
_IFNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@+-]{0,63}")
# POSIX portable user names (useradd accepts these, plus a trailing $ for machine accounts)
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?")
_UID = re.compile(r"[0-9]{1,10}")  # ASCII digits only: str.isdigit() also takes "١٢"
_SHOWN = 60  # characters of a bad value quoted in an error: a 5,000-character input is not
MAX_SECONDS = 7 * 24 * 3600  # poll() takes int milliseconds: a week fits, "inf" never does

__all__ = ["MAX_SECONDS", "bdf", "driver", "group", "is_bdf", "kname", "mdev_type", "seconds",
           "shown", "user", "uuid"]


def shown(value: object) -> str:
    """Return ``repr(value)``, cut to a readable length with the full length said."""
    text = repr(value)
    if len(text) <= _SHOWN:
        return text
    return f"{text[:_SHOWN]}... ({len(value) if isinstance(value, str) else len(text)} chars)"


def bdf(value: str, name: str = "bdf") -> str:
    """Return ``value`` as a canonical PCI address ``dddd:bb:dd.f`` (domain 0000 if omitted).

    The parser is :func:`pyvfio.sysfs.check_bdf`, shared with the object modules.

    Raises:
        TypeError: not a str.
        ValueError: not a PCI address (``0000:00:03.0``, ``00:03.0``, ``10000:e0:17.0``).
    """
    return check_bdf(value, name)


def is_bdf(value: str) -> bool:
    """Tell whether ``value`` is a full canonical PCI address (as sysfs names devices)."""
    try:
        return value == check_bdf(value)
    except (TypeError, ValueError):
        return False


def driver(value: str, name: str = "driver") -> str:
    """Return ``value`` if it is a valid kernel driver name (``vfio-pci``, ``mlx5_vfio_pci``).

    Raises:
        ValueError: empty, too long, or contains characters a driver name never has.
    """
    if not isinstance(value, str) or _DRIVER.fullmatch(value) is None:
        raise ValueError(f"{name} must be a driver name like vfio-pci, not {shown(value)}")
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
        raise ValueError(f"{name} must be an IOMMU group number like 5, not {shown(value)}")
    return int(m.group(1))


def uuid(value: str, name: str = "uuid") -> str:
    """Return ``value`` as a canonical lower-case UUID (as mdev ``create`` wants it).

    Raises:
        ValueError: not a UUID in 8-4-4-4-12 form.
    """
    low = value.lower() if isinstance(value, str) else ""
    if _UUID.fullmatch(low) is None:
        raise ValueError(f"{name} must be a UUID like 8-4-4-4-12 hex digits, not {shown(value)}")
    return str(_uuid.UUID(low))


def mdev_type(value: str, name: str = "type") -> str:
    """Return ``value`` if it is a valid mdev type directory name (``i915-GVTg_V5_4``).

    Raises:
        ValueError: contains a slash, whitespace or starts with a dot.
    """
    if not isinstance(value, str) or _MDEV_TYPE.fullmatch(value) is None:
        raise ValueError(
            f"{name} must be an mdev type name like i915-GVTg_V5_4, not {shown(value)}")
    return value


def kname(value: str, name: str = "name") -> str:
    """Return ``value`` if it is a safe kernel object name (net interface, block device).

    Raises:
        ValueError: contains a slash, whitespace, or starts with a dot.
    """
    if not isinstance(value, str) or _IFNAME.fullmatch(value) is None:
        raise ValueError(f"{name} is not a kernel object name: {shown(value)}")
    return value


def user(value: str, name: str = "user") -> str:
    """Return ``value`` if it is a numeric uid (ASCII digits) or a portable user name.

    Whether the user exists is the host's answer (:meth:`HostOS.user_ids`).

    Raises:
        ValueError: empty, non-ASCII digits, or characters a user name never has.
    """
    if not isinstance(value, str) or not (_UID.fullmatch(value) or _USER.fullmatch(value)):
        raise ValueError(f"{name} must be a user name or a numeric uid, not {shown(value)}")
    return value


def seconds(value: float | str, name: str = "timeout") -> float:
    """Return a time limit in seconds: finite, above 0 and at most :data:`MAX_SECONDS`.

    Raises:
        ValueError: not a number, NaN, infinite, zero, negative or above a week.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not 0 < number <= MAX_SECONDS:  # NaN fails every comparison
        raise ValueError(f"{name} must be a number of seconds above 0 and at most "
                         f"{MAX_SECONDS}, not {shown(value)}")
    return number
