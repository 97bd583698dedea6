"""SR-IOV: VF counts of a physical function, its VFs, and the vfio-pci VF-token precondition.

``sriov_numvfs`` (drivers/pci/iov.c:sriov_numvfs_store): EINVAL parse error, ERANGE above
``sriov_totalvfs``, ENOENT when the PF has no driver or its driver has no ``sriov_configure``
(vfio-pci without ``enable_sriov=1``), EBUSY when changing a nonzero count to another nonzero count,
so a change goes through 0; the driver's own errno otherwise (pci_sriov_configure_simple: EPERM
while VFs are assigned to guests).  Removing VFs that a VFIO user holds blocks in the kernel until
the user lets go (vfio_unregister_group_dev), and removing a VF the host uses (a disk, a network
interface) takes it away: :func:`set_numvfs` checks the VFs first.  A PF bound to vfio-pci with
VFs needs a VF token (a UUID) shared by the PF and VF users.
"""

from __future__ import annotations

import posixpath
from dataclasses import asdict, dataclass
from typing import Any

from pyvfio.errors import InUseError
from pyvfio.host import discover, inuse, validate
from pyvfio.host.hostos import HostOS
from pyvfio.kernel import Kernel


@dataclass(frozen=True)
class SriovState:
    """The SR-IOV state of one physical function."""

    bdf: str
    driver: str | None
    totalvfs: int
    numvfs: int
    vfs: tuple[str, ...]
    vf_token_needed: bool  # PF on vfio-pci with VFs: users must pass a VF token

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["vfs"] = list(self.vfs)
        return d


def state(kernel: Kernel, bdf: str) -> SriovState:
    """Return the SR-IOV state of PF ``bdf``.

    Raises:
        ValueError: malformed BDF, or the device is not SR-IOV capable.
        FileNotFoundError: no such device.
    """
    bdf = discover.require(kernel, bdf)
    base = f"bus/pci/devices/{bdf}"
    if not kernel.sysfs_exists(f"{base}/sriov_totalvfs"):
        raise ValueError(f"{bdf} is not an SR-IOV physical function (no sriov_totalvfs)")
    total = int(kernel.sysfs_read(f"{base}/sriov_totalvfs"))
    num = int(kernel.sysfs_read(f"{base}/sriov_numvfs"))
    links = sorted((n for n in kernel.sysfs_listdir(base) if n.startswith("virtfn")),
                   key=lambda n: int(n[6:]) if n[6:].isdigit() else 0)
    vfs = tuple(posixpath.basename(kernel.sysfs_readlink(f"{base}/{n}")) for n in links)
    driver = discover.driver_of(kernel, bdf)
    return SriovState(bdf, driver, total, num, vfs, driver == "vfio-pci" and num > 0)


def vf_uses(kernel: Kernel, host: HostOS, st: SriovState) -> dict[str, list[inuse.Use]]:
    """Return, per VF of ``st`` that something uses, what uses it: a process holding its VFIO
    group or cdev, or the host (a mounted disk, a configured interface, ...)."""
    found: dict[str, list[inuse.Use]] = {}
    for vf in st.vfs:
        uses = inuse.vfio_uses(kernel, host, vf) + inuse.check(kernel, host, vf)
        if uses:
            found[vf] = uses
    return found


def _write_numvfs(kernel: Kernel, path: str, value: int) -> None:
    try:
        kernel.sysfs_write(path, str(value))
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, f"/sys/{path}") from exc


def set_numvfs(kernel: Kernel, bdf: str, count: int, host: HostOS | None = None,
               force: bool = False) -> SriovState:
    """Set the VF count of PF ``bdf`` (through 0 when changing between nonzero counts).

    Before VFs are removed, each is checked with ``host`` (when given): a VF held by a VFIO
    user or used by the host raises :class:`InUseError` unless ``force``.

    Raises:
        ValueError: malformed BDF, not an SR-IOV PF, negative count or above ``sriov_totalvfs``.
        InUseError: a VF that would go away is in use (``force`` overrides).
        OSError: the kernel's errno, with ``filename`` the ``sriov_numvfs`` path: ENOENT the PF
            has no driver or its driver cannot create VFs (vfio-pci: load it with
            ``enable_sriov=1``), EBUSY VFs already enabled (only when another writer raced us),
            EPERM VFs assigned to guests, ERANGE above ``sriov_totalvfs``.
    """
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError(f"count must be a non-negative int, not {count!r}")
    st = state(kernel, bdf)
    if count > st.totalvfs:
        raise ValueError(f"count {count} is above sriov_totalvfs {st.totalvfs} of {st.bdf}")
    if st.numvfs == count:
        return st
    if st.numvfs and host is not None and not force:
        busy = vf_uses(kernel, host, st)
        if busy:
            vf, uses = next(iter(busy.items()))
            raise InUseError(vf, [u for v in busy for u in busy[v]] if len(busy) > 1 else uses)
    path = f"bus/pci/devices/{validate.bdf(st.bdf)}/sriov_numvfs"
    if st.numvfs and count:
        _write_numvfs(kernel, path, 0)
    _write_numvfs(kernel, path, count)
    return state(kernel, bdf)
