"""pyvfio's own errors: preconditions that no single system call reports.

A kernel refusal is never one of these: it stays the builtin ``OSError`` with the kernel's errno.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class PyvfioError(Exception):
    """Base class of pyvfio's own errors."""


class UnsupportedAPIError(PyvfioError):
    """The kernel's VFIO API version or a needed extension is not supported."""


class GroupNotViableError(PyvfioError):
    """An IOMMU group cannot be used: some of its devices are bound to host drivers.

    Attributes:
        group: the IOMMU group number.
        blockers: ``(bdf, driver)`` pairs of the devices that make it non-viable.
    """

    def __init__(self, group: int, blockers: list[tuple[str, str | None]]) -> None:
        self.group = group
        self.blockers = list(blockers)
        names = ", ".join(f"{bdf} (driver {drv or 'none'})" for bdf, drv in self.blockers)
        hint = "bind them to vfio-pci (pyvfio bind --group) or unbind them"
        super().__init__(
            f"IOMMU group {group} is not viable: {names or 'unknown device'} not bound to "
            f"vfio-pci; {hint}"
        )


class NotBoundError(PyvfioError):
    """A device is not bound to vfio-pci (or a vfio-pci variant driver)."""


class BindError(PyvfioError):
    """Binding or unbinding a device failed; the previous state was restored.

    Attributes:
        bdf: the device whose step failed (None when not one device's).
        step: the sysfs write or action that failed, as text.
        rolled_back: whether every device is back on the driver it had before.
    """

    def __init__(
        self, message: str, *, bdf: str | None = None, step: str | None = None,
        rolled_back: bool = True,
    ) -> None:
        super().__init__(message)
        self.bdf, self.step, self.rolled_back = bdf, step, rolled_back


class InUseError(PyvfioError):
    """A device the host depends on (mounted disk, configured interface, console) was not touched.

    Attributes:
        bdf: the device.
        uses: the :class:`pyvfio.host.inuse.Use` records naming what uses it.
    """

    def __init__(self, bdf: str, uses: Sequence[object]) -> None:
        self.bdf, self.uses = bdf, list(uses)
        what = ", ".join(str(u) for u in self.uses[:4])
        if len(self.uses) > 4:
            what += f" and {len(self.uses) - 4} more"
        super().__init__(f"{bdf} is in use by the host: {what}")


class ModeUnavailableError(PyvfioError):
    """The requested IOMMU mode (legacy container or iommufd) is not available on this host."""


class DriverError(PyvfioError):
    """A step of a userspace driver failed: which step, what went wrong, and the kernel's reason.

    Attributes:
        step: the driver step, e.g. ``"enable bus master"``, ``"map"``, ``"wait for interrupt"``.
        message: what failed, in the driver's words.
        cause: the underlying exception (an ``OSError`` keeps its errno), or None.
        hint: what to do about it, or None.
    """

    def __init__(self, step: str, message: str, cause: BaseException | None = None, *,
                 hint: str | None = None) -> None:
        self.step, self.message, self.cause, self.hint = step, message, cause, hint
        text = f"{step}: {message}"
        if cause is not None:
            text += f": {type(cause).__name__}: {cause}"
        if hint:
            text += f" (hint: {hint})"
        super().__init__(text)

    @property
    def errno(self) -> int | None:
        """The kernel's errno if the cause was an ``OSError``."""
        return self.cause.errno if isinstance(self.cause, OSError) else None

    @staticmethod
    def during(name: str, message: str | None = None, *, hint: str | None = None) -> step:
        """Return :class:`step` ``name``: ``with DriverError.during("enable MSI"): ...``."""
        return step(name, message, hint=hint)


class step:  # noqa: N801 - reads as a statement keyword: `with step("enable MSI"):`
    """Name a driver step: an ``OSError`` or ``ValueError`` raised inside becomes a
    :class:`DriverError` of that step with the original as its ``cause`` (errno kept).

        with step("map BAR0"):
            bar = device.mmap(0)

    A :class:`DriverError` raised inside passes through unchanged (it already names its step).
    """

    def __init__(self, name: str, message: str | None = None, *,
                 hint: str | None = None) -> None:
        self.name, self.message, self.hint = name, message, hint

    def __enter__(self) -> step:
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, (OSError, ValueError)) and not isinstance(exc, PyvfioError):
            # a ValueError is pyvfio's own check (a bad argument, a closed object): never
            # relabel it as the kernel's refusal
            message = self.message or ("the kernel or device refused" if isinstance(exc, OSError)
                                       else "refused before any system call")
            raise DriverError(self.name, message, exc, hint=self.hint) from exc


class GroupConflictError(PyvfioError, OSError):
    """The kernel refused a device because of its IOMMU group neighbours (the group contract).

    Every device of an IOMMU group shares one DMA owner and one domain: a cdev cannot bind while
    the group is open through /dev/vfio/N or owned by another iommufd or container, and a device
    cannot attach to a HWPT other than its neighbours'.  Also an ``OSError`` carrying the kernel's
    ``errno`` (the original error is the ``__cause__``), so ``except OSError`` still catches it.

    Attributes:
        bdf: the device that was refused (a group open: the group's /dev node).
        group: its IOMMU group number.
        neighbours: the other devices of the group (sysfs ``iommu_groups/N/devices``; a group
            open: all of them).
        operation: what was refused (the ioctl's name).
        hint: what to do about it.
    """

    def __new__(cls, err: int, *args: Any) -> GroupConflictError:
        # OSError(EPERM, ...) is a PermissionError; a subclass of OSError does not get that
        # mapping, so each errno gets a subclass that also derives from the builtin one
        kind = _conflict_class(type(OSError(err, ""))) if cls is GroupConflictError else cls
        return super().__new__(kind, err, "")

    def __init__(self, err: int, bdf: str, group: int, neighbours: Sequence[str],
                 operation: str, reason: str, hint: str) -> None:
        self.bdf, self.group, self.neighbours = bdf, group, list(neighbours)
        self.operation, self.hint = operation, hint
        names = ", ".join(self.neighbours) or "none"
        text = (f"{bdf}: {reason} (IOMMU group {group}, other devices: {names}); {hint}")
        OSError.__init__(self, err, text, operation)
        self.errno, self.strerror, self.filename = err, text, operation

    def __str__(self) -> str:
        return f"[Errno {self.errno}] {self.strerror}: {self.operation!r}"


_CONFLICT_CLASSES: dict[type[OSError], type[GroupConflictError]] = {}


def _conflict_class(builtin: type[OSError]) -> type[GroupConflictError]:
    """Return GroupConflictError combined with ``builtin`` (PermissionError, ...), cached."""
    if builtin is OSError:
        return GroupConflictError
    cls = _CONFLICT_CLASSES.get(builtin)
    if cls is None:
        cls = type("GroupConflictError", (GroupConflictError, builtin),
                   {"__module__": __name__, "__qualname__": "GroupConflictError",
                    "__doc__": GroupConflictError.__doc__})
        _CONFLICT_CLASSES[builtin] = cls
    return cls


class IOVAExhaustedError(PyvfioError):
    """No free IOVA block fits: the DMA space is full below the device's DMA mask.

    Attributes:
        size: the bytes asked for.
        align: the alignment asked for.
        limit: the highest IOVA the block could reach (the DMA mask).
    """

    def __init__(self, size: int, align: int, limit: int, message: str) -> None:
        self.size, self.align, self.limit = size, align, limit
        super().__init__(message)


class NotMappedError(PyvfioError, LookupError):
    """An address lies in no DMA mapping of the space (a translation found nothing)."""


class CloseError(PyvfioError):
    """Closing released everything it could, but some steps failed.

    Attributes:
        failures: ``(step, exception)`` for each failed step, in the order they ran.
    """

    def __init__(self, what: str, failures: Sequence[tuple[str, BaseException]]) -> None:
        self.failures = list(failures)
        steps = "; ".join(f"{step}: {type(exc).__name__}: {exc}" for step, exc in self.failures)
        super().__init__(f"closing {what}: {len(self.failures)} step(s) failed ({steps}); "
                         "every fd, mapping and mmap was released anyway")

    @staticmethod
    def attempt(failures: list[tuple[str, BaseException]], step: str, fn: Any,
                *args: Any) -> None:
        """Run one close step; record its failure in ``failures`` instead of stopping the rest."""
        try:
            fn(*args)
        except Exception as exc:
            failures.append((step, exc))

    @property
    def errno(self) -> int | None:
        """The errno of the first failure that was an ``OSError``, or None."""
        for _, exc in self.failures:
            if isinstance(exc, OSError):
                return exc.errno
        return None
