"""Bind and unbind PCI devices to vfio-pci safely: driver_override + drivers_probe, never new_id.

The recipe (uapi.md §5, driverctl, dpdk-devbind): write the driver to ``driver_override``, unbind
the current driver, write the BDF to ``drivers_probe``, check the ``driver`` link, and clear the
override (``"\\n"``: a 0-byte write never reaches the kernel) unless persistence is asked for.
``new_id`` is never used: it captures every device with the same ids.  Every change is first
planned as a list of :class:`Step` (what ``--dry-run`` prints), then executed; if any step fails
or the run is interrupted, every device is put back on the driver and override it had.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pyvfio.errors import BindError, InUseError, PyvfioError
from pyvfio.host import discover, inuse, persist, validate, viability
from pyvfio.host.hostos import HostOS
from pyvfio.kernel import Kernel

STATE_DIR = persist.STATE_DIR
CLEAR = "\n"


class PlanError(PyvfioError):
    """A dry run found that the plan cannot work on this host (nothing was written)."""


@dataclass(frozen=True)
class Step:
    """One action: ``write`` a sysfs attribute, ``modprobe`` a module, ``expect`` a binding."""

    action: str
    path: str  # sysfs path (write), module (modprobe), BDF (expect)
    value: str = ""

    def describe(self, sysfs_root: str = "/sys") -> str:
        if self.action == "write":
            shown = "(clear)" if self.value == CLEAR else self.value
            return f"write {shown!s} > {sysfs_root}/{self.path}"
        if self.action == "modprobe":
            return f"modprobe {self.path}"
        return f"check {self.path} is bound to {self.value or 'no driver'}"


@dataclass
class Result:
    """What bind/unbind did (or, for a dry run, would do)."""

    devices: list[str]
    steps: list[Step]
    previous: dict[str, str | None]
    dry_run: bool
    nodes: dict[str, list[str]] = field(default_factory=dict)
    missing_nodes: list[str] = field(default_factory=list)
    report: viability.GroupReport | None = None
    # what undo() needs: each device's (driver, override) before, the previous-driver files written
    snapshot: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    remembered: list[str] = field(default_factory=list)
    unchanged: dict[str, str] = field(default_factory=dict)  # unbind: on a host driver, left alone

    def to_json(self, sysfs_root: str = "/sys") -> dict[str, Any]:
        return {
            "devices": self.devices, "dry_run": self.dry_run, "previous": self.previous,
            "steps": [s.describe(sysfs_root) for s in self.steps], "nodes": self.nodes,
            "missing_nodes": self.missing_nodes,
            "group": None if self.report is None else self.report.to_json(),
            "unchanged": self.unchanged,
        }


def _override_of(kernel: Kernel, bdf: str) -> str | None:
    try:
        value = kernel.sysfs_read(f"bus/pci/devices/{bdf}/driver_override")
    except OSError:
        return None
    return None if value in ("", "(null)") else value


def plan_bind(kernel: Kernel, bdfs: list[str], driver: str, keep_override: bool) -> list[Step]:
    """Return the steps that bind each of ``bdfs`` to ``driver`` (none for those already on it)."""
    steps: list[Step] = []
    if not kernel.sysfs_exists(f"bus/pci/drivers/{driver}"):
        steps.append(Step("modprobe", driver.replace("-", "_")))
    for bdf in bdfs:
        current = discover.driver_of(kernel, bdf)
        if current == driver:
            continue
        dev = f"bus/pci/devices/{bdf}"
        steps.append(Step("write", f"{dev}/driver_override", driver))
        if current is not None:
            steps.append(Step("write", f"bus/pci/drivers/{validate.driver(current)}/unbind", bdf))
        steps += [Step("write", "bus/pci/drivers_probe", bdf), Step("expect", bdf, driver)]
        if not keep_override:
            steps.append(Step("write", f"{dev}/driver_override", CLEAR))
    return steps


def plan_unbind(kernel: Kernel, bdfs: list[str], restore: dict[str, str | None]) -> list[Step]:
    """Return the steps that take each of ``bdfs`` off its driver and onto ``restore[bdf]``.

    A None target clears the override and lets the kernel probe the native driver (if any).
    """
    steps: list[Step] = []
    for bdf in bdfs:
        dev, target = f"bus/pci/devices/{bdf}", restore.get(bdf)
        current = discover.driver_of(kernel, bdf)
        if current is not None and current == target:
            continue
        if current is not None:
            steps.append(Step("write", f"bus/pci/drivers/{validate.driver(current)}/unbind", bdf))
        steps.append(Step("write", f"{dev}/driver_override", target or CLEAR))
        steps.append(Step("write", "bus/pci/drivers_probe", bdf))
        if target is not None:
            steps += [Step("expect", bdf, target), Step("write", f"{dev}/driver_override", CLEAR)]
    return steps


def _run(kernel: Kernel, host: HostOS, step: Step) -> None:
    if step.action == "write":
        kernel.sysfs_write(step.path, step.value)
    elif step.action == "modprobe":
        host.modprobe(step.path)
    else:
        got = discover.driver_of(kernel, step.path)
        if got != step.value:
            raise BindError(f"{step.path} is bound to {got or 'no driver'} after probing, "
                            f"not {step.value}", bdf=step.path, step=step.describe())


def restore(kernel: Kernel, snapshot: dict[str, tuple[str | None, str | None]]) -> bool:
    """Put each device back on its (driver, override) of ``snapshot``; return True if all are."""
    ok = True
    for bdf, (driver, override) in snapshot.items():
        dev = f"bus/pci/devices/{bdf}"
        try:
            current = discover.driver_of(kernel, bdf)
            if current != driver:
                if current is not None:
                    kernel.sysfs_write(f"bus/pci/drivers/{current}/unbind", bdf)
                if driver is not None:
                    kernel.sysfs_write(f"{dev}/driver_override", driver)
                    kernel.sysfs_write("bus/pci/drivers_probe", bdf)
            kernel.sysfs_write(f"{dev}/driver_override", override or CLEAR)
            ok = ok and discover.driver_of(kernel, bdf) == driver
        except OSError:
            ok = False
    return ok


def execute(kernel: Kernel, host: HostOS, steps: list[Step],
            bdfs: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """Run ``steps``; on any failure or interruption restore ``bdfs`` and raise.

    Returns the (driver, override) each device had before, for :func:`undo`.

    Raises:
        BindError: a step failed (the kernel's OSError is its ``__cause__``); ``rolled_back`` says
            whether every device is back where it was.
    """
    snapshot = {b: (discover.driver_of(kernel, b), _override_of(kernel, b)) for b in bdfs}
    for step in steps:
        try:
            _run(kernel, host, step)
        except BindError as exc:
            exc.rolled_back = restore(kernel, snapshot)
            raise
        except OSError as exc:
            back = restore(kernel, snapshot)
            raise BindError(f"{step.describe(kernel.sysfs_root)} failed: {exc.strerror or exc}",
                            bdf=step.path if step.action == "expect" else None,
                            step=step.describe(kernel.sysfs_root), rolled_back=back) from exc
        except BaseException:
            restore(kernel, snapshot)
            raise
    return snapshot


def targets(kernel: Kernel, bdf: str, whole_group: bool) -> list[str]:
    """Return the devices a bind of ``bdf`` touches: itself, or its group's blocking members.

    Raises:
        FileNotFoundError: no such device.
        BindError: a blocking group member is not a PCI device (pyvfio cannot rebind it).
    """
    bdf = discover.require(kernel, bdf)
    report = viability.diagnose_device(kernel, bdf) if whole_group else None
    if report is None:
        return [bdf]
    extra = [m.name for m in report.blockers if m.name != bdf]
    for name in extra:
        if not validate.is_bdf(name):
            raise BindError(f"group {report.group} member {name} is not a PCI device", bdf=name)
    return sorted({bdf, *extra})


def check_in_use(kernel: Kernel, host: HostOS, bdfs: list[str]) -> None:
    """Raise :class:`InUseError` for the first device of ``bdfs`` the host is using."""
    for b in bdfs:
        uses = inuse.check(kernel, host, b)
        if uses:
            raise InUseError(b, uses)


def wait_nodes(kernel: Kernel, bdfs: list[str], timeout: float) -> tuple[dict[str, list[str]],
                                                                        list[str]]:
    """Wait until the group node and cdevs of every device exist; return (nodes, missing)."""
    deadline = time.monotonic() + timeout
    while True:
        nodes: dict[str, list[str]] = {}
        missing: list[str] = []
        for b in bdfs:
            group = discover.group_of(kernel, b)
            want = [] if group is None else [f"/dev/vfio/{group}"]
            if group is not None and kernel.exists(f"/dev/vfio/noiommu-{group}"):
                want = [f"/dev/vfio/noiommu-{group}"]
            if kernel.exists("/dev/vfio/devices"):
                want += [f"/dev/vfio/devices/{n}" for n in discover.cdev_names(kernel, b)]
            nodes[b] = [p for p in want if kernel.exists(p)]
            missing += [p for p in want if not kernel.exists(p)]
        if not missing or time.monotonic() >= deadline:
            return nodes, missing
        _pause(kernel, min(0.05, max(0.0, deadline - time.monotonic())))


def _pause(kernel: Kernel, seconds: float) -> None:
    """Sleep until a vfio uevent (real host, pyudev) or ``seconds`` pass (polling fallback)."""
    if discover.uses_udev(kernel):
        try:
            import pyudev  # noqa: PLC0415

            monitor = pyudev.Monitor.from_netlink(pyudev.Context())
            monitor.filter_by("vfio")
            monitor.start()
            monitor.poll(timeout=seconds)
            return
        except Exception:
            pass
    time.sleep(seconds)


def bind(kernel: Kernel, host: HostOS, bdf: str, *, driver: str = "vfio-pci",
         whole_group: bool = False, force: bool = False, dry_run: bool = False,
         keep_override: bool = False, state_dir: str = STATE_DIR,
         timeout: float = 5.0) -> Result:
    """Bind ``bdf`` (and with ``whole_group`` its group's blocking members) to ``driver``.

    Raises:
        ValueError: a malformed BDF or driver name, a timeout not in (0, a week].
        FileNotFoundError: no such device.
        InUseError: a device is in use by the host and ``force`` is false.
        PlanError: (``dry_run``) the plan cannot work on this host.
        BindError: a step failed; the devices were put back (see ``rolled_back``).
    """
    driver = validate.driver(driver)
    timeout = validate.seconds(timeout)
    bdfs = targets(kernel, bdf, whole_group)
    if not force:
        check_in_use(kernel, host, [b for b in bdfs if discover.driver_of(kernel, b)])
    previous = {b: discover.driver_of(kernel, b) for b in bdfs}
    steps = plan_bind(kernel, bdfs, driver, keep_override)
    result = Result(bdfs, steps, previous, dry_run)
    if dry_run:
        check_plan(kernel, host, bdfs, driver)
        return result
    result.snapshot = execute(kernel, host, steps, bdfs)
    for b, prev in previous.items():
        if prev != driver and not (prev and viability.is_vfio_driver(kernel, prev)):
            persist.remember(state_dir, b, prev)
            result.remembered.append(b)
    if viability.is_vfio_driver(kernel, driver):
        result.nodes, result.missing_nodes = wait_nodes(kernel, bdfs, timeout)
    result.report = viability.diagnose_device(kernel, bdfs[0])
    return result


def undo(kernel: Kernel, result: Result, state_dir: str = STATE_DIR) -> bool:
    """Undo a completed :func:`bind`: each device back on its driver and override, the
    previous-driver files it wrote removed; return True if every device is back."""
    back = restore(kernel, result.snapshot)
    for b in result.remembered:
        persist.forget(state_dir, b)
    return back


def noiommu_enabled(kernel: Kernel, host: HostOS) -> bool:
    """Tell whether vfio's unsafe no-IOMMU mode is on, or set for when vfio loads."""
    try:
        if kernel.sysfs_read("module/vfio/parameters/enable_unsafe_noiommu_mode") == "Y":
            return True
    except OSError:
        pass
    try:
        words = host.read_proc("cmdline").split()
    except OSError:
        return False
    return any(w in words for w in ("vfio.enable_unsafe_noiommu_mode=1",
                                    "vfio.enable_unsafe_noiommu_mode=Y",
                                    "vfio.enable_unsafe_noiommu_mode=y"))


def check_plan(kernel: Kernel, host: HostOS, bdfs: list[str], driver: str) -> None:
    """Refuse a plan that cannot work: a VFIO driver for a device with no IOMMU group (vfio
    answers EINVAL at probe, drivers/vfio/group.c:vfio_group_find_or_alloc) unless no-IOMMU
    mode is on.

    Raises:
        PlanError: the bind would fail; the message says why and what to do.
    """
    if driver != "vfio-pci" and not viability.is_vfio_driver(kernel, driver):
        return
    lost = [b for b in bdfs if discover.group_of(kernel, b) is None]
    if lost and not noiommu_enabled(kernel, host):
        raise PlanError(f"{', '.join(lost)} has no IOMMU group: the IOMMU is off or absent, so "
                        f"{driver} would refuse it (see 'pyvfio doctor')")


def unbind(kernel: Kernel, host: HostOS, bdf: str, *, driver: str | None = None,
           whole_group: bool = False, force: bool = False, dry_run: bool = False,
           state_dir: str = STATE_DIR) -> Result:
    """Take ``bdf`` (and with ``whole_group`` the rest of its group) off its driver and back onto
    ``driver``, else the driver it had before pyvfio bound it, else whatever the kernel probes.
    A device on a host (non-VFIO) driver is left alone and listed in ``Result.unchanged``.

    Raises:
        ValueError: a malformed BDF or driver name.
        FileNotFoundError: no such device.
        InUseError: a process holds the device's VFIO nodes (unbinding would block until it lets
            go), or the host uses it; not raised with ``force``.
        BindError: a step failed; the devices were put back.
    """
    bdf = discover.require(kernel, bdf)
    bdfs = [bdf]
    if whole_group:
        group = discover.group_of(kernel, bdf)
        names = [] if group is None else viability.members(kernel, group)
        bound = [n for n in names if validate.is_bdf(n) and discover.driver_of(kernel, n)]
        bdfs = sorted({bdf, *(n for n in bound if viability.is_vfio_driver(
            kernel, discover.driver_of(kernel, n) or ""))})
    target = validate.driver(driver) if driver else None
    # a device on a host driver is not pyvfio's to take away: unbind is a no-op for it
    unchanged = {b: d for b in bdfs if (d := discover.driver_of(kernel, b)) is not None
                 and not viability.is_vfio_driver(kernel, d)}
    bdfs = [b for b in bdfs if b not in unchanged]
    for b in [] if force else bdfs:
        uses = inuse.vfio_uses(kernel, host, b) if discover.driver_of(kernel, b) else \
            inuse.check(kernel, host, b)
        if uses:
            raise InUseError(b, uses)
    to = {b: target or persist.recall(state_dir, b) for b in bdfs}
    steps = plan_unbind(kernel, bdfs, to)
    previous = {b: discover.driver_of(kernel, b) for b in bdfs}
    result = Result(bdfs, steps, previous, dry_run, unchanged=unchanged)
    if not dry_run:
        execute(kernel, host, steps, bdfs)
        for b in bdfs:
            persist.forget(state_dir, b)
        result.report = viability.diagnose_device(kernel, bdf)
    return result

