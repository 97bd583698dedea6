"""SR-IOV: VF counts of a physical function, its VFs, and the vfio-pci VF-token precondition.

``sriov_numvfs`` (drivers/pci/iov.c:sriov_numvfs_store): EINVAL parse error, ERANGE above
``sriov_totalvfs``, ENOENT when the PF driver has no ``sriov_configure`` (vfio-pci without
``enable_sriov=1``), EBUSY when changing a nonzero count to another nonzero count, so a change goes
through 0.  A PF bound to vfio-pci with VFs needs a VF token (a UUID) shared by the PF and VF users.
"""

from __future__ import annotations

import posixpath
from dataclasses import asdict, dataclass
from typing import Any

from pyvfio.host import discover, validate
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


def set_numvfs(kernel: Kernel, bdf: str, count: int) -> SriovState:
    """Set the VF count of PF ``bdf`` (through 0 when changing between nonzero counts).

    Raises:
        ValueError: malformed BDF, negative count or above ``sriov_totalvfs``.
        OSError: the kernel's errno (ENOENT: the PF driver cannot create VFs; for vfio-pci load it
            with ``enable_sriov=1``).
    """
    if not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be a non-negative int, not {count!r}")
    st = state(kernel, bdf)
    if count > st.totalvfs:
        raise ValueError(f"count {count} is above sriov_totalvfs {st.totalvfs} of {st.bdf}")
    path = f"bus/pci/devices/{validate.bdf(bdf)}/sriov_numvfs"
    if st.numvfs and count and st.numvfs != count:
        kernel.sysfs_write(path, "0")
    if st.numvfs != count:
        kernel.sysfs_write(path, str(count))
    return state(kernel, bdf)
