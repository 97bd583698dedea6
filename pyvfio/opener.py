"""``pyvfio.open_device``: one call from a PCI address to a ready :class:`~pyvfio.device.Device`.

The device comes back owning everything opened for it: its DMA space (``device.dma``), the group
and container or the iommufd behind it, its BARs and its interrupts; ``device.close()`` (or the
``with`` block) releases all of it.  The IOMMU mode is chosen at run time and the device says
which and why (``device.mode``, ``device.iommu_mode``, ``device.mode_reason``):

========================  ===============================================================
``mode=``                 what is opened
========================  ===============================================================
``"auto"``                iommufd if /dev/iommu and the device's cdev exist, else legacy
``"iommufd"``             /dev/iommu + IOAS + the cdev (/dev/vfio/devices/vfioX)
``"legacy"``              /dev/vfio/vfio container (type1v2, else type1) + /dev/vfio/N
``"type1"``/``"type1v2"``  legacy with that IOMMU type
``"compat"``              /dev/iommu used as the container (vfio_compat.c) + /dev/vfio/N
``"compat-type1"``, ...   compat with that IOMMU type
========================  ===============================================================

The explicit paths (:class:`~pyvfio.container.Container` + :class:`~pyvfio.group.Group`,
:class:`~pyvfio.iommufd.IOMMUFD` + :class:`~pyvfio.cdev.CdevDevice`,
:class:`~pyvfio.vfio_compat.CompatContainer`) are the parts this module assembles.
"""

from __future__ import annotations

import errno

from pyvfio import sysfs, uapi
from pyvfio.cdev import CdevDevice
from pyvfio.container import Container
from pyvfio.device import Device
from pyvfio.errors import ModeUnavailableError
from pyvfio.group import Group
from pyvfio.iommufd import IOMMUFD
from pyvfio.iommufd import PATH as IOMMU_PATH
from pyvfio.kernel import Kernel, default
from pyvfio.vfio_compat import CompatContainer

#: The five IOMMU modes of the conformance axis (the kernel selftests' variants).
IOMMU_MODES = ("type1", "type1v2", "compat-type1", "compat-type1v2", "iommufd")
MODES = ("auto", "legacy", "compat", *IOMMU_MODES)
_TYPES = {"type1": uapi.IOMMUType.TYPE1, "type1v2": uapi.IOMMUType.TYPE1v2}


def open_device(bdf: str, *, mode: str = "auto", kernel: Kernel | None = None) -> Device:
    """Open PCI device ``bdf`` with its DMA space in the best (or the given) IOMMU mode.

    Args:
        bdf: the device, bound to vfio-pci (``0000:00:03.0``).
        mode: one of :data:`MODES` (see the module docstring).
        kernel: the kernel; the real one by default (tests pass a ``FakeKernel``).

    Returns:
        The device, a context manager that owns its DMA space, BARs and interrupts.

    Raises:
        TypeError, ValueError: a malformed ``bdf``, an unknown ``mode``.
        ModeUnavailableError: ``mode`` asks for iommufd (or compat) on a host without it.
        GroupNotViableError: a device of the group is bound to a host driver (legacy, compat).
        FileNotFoundError: no such PCI device.
        OSError: the kernel's refusal of any step; nothing stays open.
    """
    bdf = sysfs.check_bdf(bdf)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    kernel = default() if kernel is None else kernel
    if not kernel.sysfs_exists(sysfs.device_dir(bdf)):
        raise FileNotFoundError(errno.ENOENT, f"no PCI device {bdf}",
                                f"{kernel.sysfs_root}/{sysfs.device_dir(bdf)}")
    why_not = _iommufd_unavailable(bdf, kernel)
    if mode == "auto":
        if why_not is None:
            return _open_iommufd(bdf, kernel, "iommufd and the device's cdev are available")
        return _open_group(bdf, kernel, None, None, f"iommufd not used: {why_not}")
    if mode == "iommufd":
        if why_not is not None:
            raise ModeUnavailableError(f"iommufd mode unavailable: {why_not}")
        return _open_iommufd(bdf, kernel, "iommufd requested")
    compat = mode.startswith("compat")
    if compat and not kernel.exists(IOMMU_PATH):
        raise ModeUnavailableError(
            f"{mode} mode unavailable: {IOMMU_PATH} does not exist (kernel without "
            "CONFIG_IOMMUFD)")
    iommu_type = _TYPES.get(mode.removeprefix("compat-"))
    return _open_group(bdf, kernel, iommu_type, compat, f"{mode} requested")


def _iommufd_unavailable(bdf: str, kernel: Kernel) -> str | None:
    if not kernel.exists(IOMMU_PATH):
        return f"{IOMMU_PATH} does not exist (kernel without CONFIG_IOMMUFD, e.g. Debian's)"
    if sysfs.cdev_node(kernel, bdf) is None:
        return f"{bdf} has no VFIO cdev (CONFIG_VFIO_DEVICE_CDEV unset or not bound to vfio-pci)"
    return None


def _open_iommufd(bdf: str, kernel: Kernel, reason: str) -> Device:
    iommufd = IOMMUFD(kernel)
    try:
        ioas = iommufd.ioas()
        device = CdevDevice(bdf, kernel=kernel)
        iommufd._adopt(device)  # closed with the iommufd should bind fail half-way
        device.bind(iommufd)
        device.attach(ioas)
    except BaseException:
        iommufd.close()  # closes the cdev first: unbind and detach come with it
        raise
    device._adopt_owners([iommufd], ioas, "iommufd", reason, "iommufd")
    return device


def _open_group(bdf: str, kernel: Kernel, iommu_type: int | None, compat: bool | None,
                reason: str) -> Device:
    number = sysfs.iommu_group(kernel, bdf)
    iommufd = IOMMUFD(kernel) if compat else None
    container: Container | None = None
    group: Group | None = None
    try:
        container = Container(kernel) if iommufd is None else CompatContainer(iommufd)
        group = Group(number, kernel=kernel)
        group.set_container(container)
        chosen = container.set_iommu(iommu_type)
        device = group.open_device(bdf)
    except BaseException:
        for owner in (group, container, iommufd):
            if owner is not None:
                owner.close()
        raise
    name = "type1v2" if chosen == uapi.IOMMUType.TYPE1v2 else (
        "type1" if chosen == uapi.IOMMUType.TYPE1 else f"type {int(chosen)}")
    family = "compat" if compat else "legacy"
    owners = [group, container] + ([iommufd] if iommufd is not None else [])
    device._adopt_owners(owners, container, family, reason,
                         f"compat-{name}" if compat else name)
    return device
