"""A VFIO group (/dev/vfio/N, or /dev/vfio/noiommu-N): viability, container, device fds."""

from __future__ import annotations

import errno
import uuid
import weakref
from dataclasses import dataclass

from pyvfio import _ioctl, sysfs, uapi
from pyvfio._ffi import C, ffi, new
from pyvfio._resource import FdOwner
from pyvfio.container import Container
from pyvfio.device import Device
from pyvfio.dma import check_int
from pyvfio.errors import GroupConflictError, GroupNotViableError
from pyvfio.kernel import Kernel, default


@dataclass(frozen=True)
class GroupStatus:
    """``VFIO_GROUP_GET_STATUS`` decoded."""

    viable: bool
    container_set: bool


class Group(FdOwner):
    """An IOMMU group opened through VFIO.  Closing it closes its devices first."""

    def __init__(
        self, number: int, *, kernel: Kernel | None = None, noiommu: bool | None = None
    ) -> None:
        """Open the group's /dev node.

        Args:
            number: the IOMMU group number.
            kernel: the kernel; the real one by default.
            noiommu: open ``noiommu-N``; None: whichever of the two nodes exists.

        Raises:
            TypeError, ValueError: ``number`` not a non-negative int.
            GroupConflictError: (an OSError, EBUSY) the group is open already, or a device of
                it is bound through its cdev; names the group's devices.
            OSError: ENOENT (no such group or not bound to vfio), EACCES (no permission).
        """
        check_int("number", number, 0, 0xFFFFFFFF)
        kernel = default() if kernel is None else kernel
        if noiommu is None:
            noiommu = not kernel.exists(f"/dev/vfio/{number}") and kernel.exists(
                f"/dev/vfio/noiommu-{number}"
            )
        self.number = number
        self.noiommu = bool(noiommu)
        self.path = f"/dev/vfio/noiommu-{number}" if noiommu else f"/dev/vfio/{number}"
        self._container: Container | None = None
        self._devices: weakref.WeakSet[Device] = weakref.WeakSet()
        try:
            fd = kernel.open(self.path)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                self._busy(kernel, exc)
            raise
        self._own(kernel, fd)

    def _busy(self, kernel: Kernel, exc: OSError) -> None:
        """group.c:vfio_group_fops_open: EBUSY is the group contract; name the devices."""
        try:
            members = sysfs.group_members(kernel, self.number)
        except OSError:
            return  # no sysfs view: the kernel's errno is all there is
        raise GroupConflictError(
            errno.EBUSY, self.path, self.number, members, "open",
            "the group is open already (a VFIO group has one opener) or a device of it is bound "
            "through its cdev",
            "close the group's other fd (or the cdevs bound in it) first, or open every device "
            "of the group by its cdev instead") from exc

    @classmethod
    def from_device(cls, bdf: str, *, kernel: Kernel | None = None) -> Group:
        """Open the group of PCI device ``bdf`` (``0000:00:03.0``), found through sysfs.

        Raises:
            TypeError, ValueError: ``bdf`` is not a PCI address.
            OSError: ENOENT if the device does not exist or has no IOMMU group.
        """
        bdf = sysfs.check_bdf(bdf)
        kernel = default() if kernel is None else kernel
        return cls(sysfs.iommu_group(kernel, bdf), kernel=kernel)

    def __repr__(self) -> str:
        return f"<Group {self.path} fd={self._fd}>"

    def _close_children(self) -> None:
        try:
            for device in list(self._devices):
                device.close()  # a device fd must close before its group (else EBUSY)
        finally:
            if self._container is not None:  # closing the fd unsets the container
                self._container._detach(self)
                self._container = None

    @property
    def container(self) -> Container | None:
        """The container this group joined, or None."""
        return self._container

    def status(self) -> GroupStatus:
        """Return ``VFIO_GROUP_GET_STATUS``.

        Raises:
            OSError: ENODEV while the group is being torn down.
        """
        self._check_open()
        arg = new("struct vfio_group_status *")
        _ioctl.call(self._kernel, self._fd, uapi.VFIO_GROUP_GET_STATUS, arg)
        flags = int(arg.flags)
        return GroupStatus(
            bool(flags & C.VFIO_GROUP_FLAGS_VIABLE), bool(flags & C.VFIO_GROUP_FLAGS_CONTAINER_SET)
        )

    @property
    def viable(self) -> bool:
        """True if every device of the group is bound to vfio-pci (or harmless), or unbound."""
        return self.status().viable

    def devices(self) -> list[str]:
        """Return the names (PCI BDFs) of the group's devices, from sysfs.

        Raises:
            OSError: ENOENT if the group vanished from sysfs.
        """
        return sysfs.group_members(self._kernel, self.number)

    def blockers(self) -> list[tuple[str, str | None]]:
        """Return ``(device, driver)`` for each device whose host driver blocks the group
        (the rule of :func:`pyvfio.sysfs.judge`)."""
        return list(sysfs.blockers(self._kernel, self.number))

    def check_viable(self) -> None:
        """Raise unless the group is viable.

        Raises:
            GroupNotViableError: naming each blocking device and its driver.
        """
        if not self.viable:
            raise GroupNotViableError(self.number, self.blockers())

    def set_container(self, container: Container) -> None:
        """Join ``container`` (``VFIO_GROUP_SET_CONTAINER``).

        Raises:
            TypeError: ``container`` is not a :class:`Container`.
            ValueError: ``container`` is closed.
            GroupNotViableError: some device of the group is bound to a host driver.
            OSError: EINVAL (already in a container), EPERM (mixing no-IOMMU and IOMMU groups,
                or the group is owned elsewhere), EBUSY (a vaddr update is in progress).
        """
        if not isinstance(container, Container):
            raise TypeError(f"container must be a Container, not {type(container).__name__}")
        fd = ffi.new("int32_t *", container.fileno())
        self.check_viable()
        _ioctl.call(self._kernel, self._fd, uapi.VFIO_GROUP_SET_CONTAINER, fd)
        self._container = container  # the group keeps its container alive
        container._attach(self)

    def unset_container(self) -> None:
        """Leave the container (the last group to leave drops every DMA mapping).

        Raises:
            OSError: EINVAL (no container), EBUSY (a device of the group is open).
        """
        self._check_open()
        _ioctl.call(self._kernel, self._fd, uapi.VFIO_GROUP_UNSET_CONTAINER)
        if self._container is not None:
            self._container._detach(self)
            self._container = None

    def open_device(self, name: str, *, vf_token: uuid.UUID | str | None = None) -> Device:
        """Open device ``name`` (``VFIO_GROUP_GET_DEVICE_FD``).

        Args:
            name: the device's name in the group, a PCI BDF such as ``0000:00:03.0``.
            vf_token: the VF token shared with the PF driver, for SR-IOV VFs.

        Raises:
            TypeError, ValueError: bad name or token.
            OSError: EINVAL (no container or IOMMU set, bad option), ENODEV (not in this group),
                EACCES (missing or wrong VF token), EBUSY (already open elsewhere).
        """
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        if not name or " " in name or "\0" in name:
            raise ValueError(f"name must be a device name without spaces, not {name!r}")
        if vf_token is not None:
            name = f"{name} vf_token={uuid.UUID(str(vf_token))}"
        self._check_open()
        arg = ffi.new("char[]", name.encode())
        fd = _ioctl.call(self._kernel, self._fd, uapi.VFIO_GROUP_GET_DEVICE_FD, arg)
        try:
            device = Device(self, name.split(" ")[0], fd)
        except BaseException:
            self._kernel.close(fd)
            raise
        self._devices.add(device)
        return device
