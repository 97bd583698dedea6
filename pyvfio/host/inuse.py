"""In-use checks: is a PCI device something the host depends on right now?

A device is in use when it backs a block device with a mounted filesystem, holders (dm, md), active
swap or any on-disk signature (filesystem, RAID/LVM member, partition table); a network interface
that is up, has addresses or carries routes; or the boot VGA / a framebuffer console.  These combine
SPDK setup.sh's block checks with dpdk-devbind's route check; unbinding such a device can take the
root filesystem or the ssh session away, so ``bind`` refuses unless forced.
"""

from __future__ import annotations

import errno
import ipaddress
import posixpath
import struct
from dataclasses import asdict, dataclass

from pyvfio.disksig import HEAD_SIZE, signature  # signature re-exported
from pyvfio.host import validate
from pyvfio.host.hostos import HostOS
from pyvfio.kernel import Kernel

IFF_UP = 0x1
IPV6_SCOPE_LINK = 0x20


@dataclass(frozen=True)
class Use:
    """One reason a device is in use: kind (mount, holder, swap, signature, interface, address,
    route, vga, console, unchecked), the object (``nvme0n1p2``, ``eth0``) and what it is."""

    kind: str
    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}@{self.name}: {self.detail}"

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def owned(kernel: Kernel, bdf: str, cls: str) -> list[str]:
    """Return the names in ``/sys/class/<cls>`` whose device sits under PCI device ``bdf``."""
    bdf = validate.bdf(bdf)
    try:
        names = kernel.sysfs_listdir(f"class/{cls}")
    except OSError:
        return []
    out = []
    for name in names:
        try:
            target = kernel.sysfs_readlink(f"class/{cls}/{validate.kname(name)}")
        except (OSError, ValueError):
            continue
        if bdf in target.split("/"):
            out.append(name)
    return out


def _mounts(host: HostOS) -> dict[str, list[str]]:
    by_dev: dict[str, list[str]] = {}
    for line in host.read_proc("self/mountinfo").splitlines():
        fields = line.split()
        if len(fields) > 4:
            by_dev.setdefault(fields[2], []).append(fields[4].replace("\\040", " "))
    return by_dev


def _swaps(host: HostOS) -> set[str]:
    lines = host.read_proc("swaps").splitlines()[1:]
    return {posixpath.basename(line.split()[0]) for line in lines if line.split()}


def block_uses(kernel: Kernel, host: HostOS, bdf: str) -> list[Use]:
    """Return the uses of the block devices (and their partitions) under ``bdf``."""
    names = owned(kernel, bdf, "block")
    if not names:
        return []
    mounts, swaps = _mounts(host), _swaps(host)
    uses: list[Use] = []
    for name in names:
        base = f"class/block/{name}"
        found = len(uses)
        dev = kernel.sysfs_read(f"{base}/dev") if kernel.sysfs_exists(f"{base}/dev") else ""
        uses += [Use("mount", name, f"mounted on {m}") for m in mounts.get(dev, [])]
        if name in swaps:
            uses.append(Use("swap", name, "active swap"))
        try:
            holders = kernel.sysfs_listdir(f"{base}/holders")
        except OSError:
            holders = []
        uses += [Use("holder", name, f"held by {h}") for h in holders]
        if len(uses) == found:
            try:
                sig = signature(host.read_block_head(name, HEAD_SIZE))
            except OSError as exc:
                err = errno.errorcode.get(exc.errno or 0, str(exc.errno))
                uses.append(Use("unchecked", name, f"cannot read /dev/{name} ({err})"))
            else:
                if sig:
                    uses.append(Use("signature", name, f"holds data: {sig}"))
    return uses


def _route_ifaces(host: HostOS) -> dict[str, list[str]]:
    routes: dict[str, list[str]] = {}
    for line in host.read_proc("net/route").splitlines()[1:]:
        f = line.split()
        if len(f) < 8:
            continue
        dest = struct.pack("<I", int(f[1], 16))
        mask = bin(int(f[7], 16)).count("1")
        if dest[:2] == b"\xa9\xfe":  # 169.254/16 link-local, as dpdk-devbind skips it
            continue
        routes.setdefault(f[0], []).append(f"{'.'.join(map(str, dest))}/{mask}")
    for line in host.read_proc("net/ipv6_route").splitlines():
        f = line.split()
        if len(f) < 10 or f[0].startswith(("fe80", "ff")):
            continue
        dest6 = str(ipaddress.IPv6Address(int(f[0], 16)))
        routes.setdefault(f[9], []).append(f"{dest6}/{int(f[1], 16)}")
    return routes


def _ipv6(host: HostOS) -> dict[str, list[str]]:
    addrs: dict[str, list[str]] = {}
    for line in host.read_proc("net/if_inet6").splitlines():
        f = line.split()
        if len(f) == 6 and int(f[3], 16) != IPV6_SCOPE_LINK:
            addrs.setdefault(f[5], []).append(str(ipaddress.IPv6Address(int(f[0], 16))))
    return addrs


def net_uses(kernel: Kernel, host: HostOS, bdf: str) -> list[Use]:
    """Return the uses of the network interfaces under ``bdf``: up, addresses, routes."""
    names = owned(kernel, bdf, "net")
    if not names:
        return []
    routes, v6 = _route_ifaces(host), _ipv6(host)
    uses: list[Use] = []
    for name in names:
        try:
            flags = int(kernel.sysfs_read(f"class/net/{name}/flags"), 16)
        except (OSError, ValueError):
            flags = 0
        if flags & IFF_UP:
            uses.append(Use("interface", name, "interface is up"))
        for addr in host.ipv4_addresses(name) + v6.get(name, []):
            uses.append(Use("address", name, f"has address {addr}"))
        for route in routes.get(name, []):
            uses.append(Use("route", name, f"carries route {route}"))
    return uses


def display_uses(kernel: Kernel, bdf: str) -> list[Use]:
    """Return the boot-VGA and framebuffer-console uses of ``bdf``."""
    uses = []
    try:
        if kernel.sysfs_read(f"bus/pci/devices/{validate.bdf(bdf)}/boot_vga") == "1":
            uses.append(Use("vga", bdf, "boot VGA device (the firmware console is on it)"))
    except OSError:
        pass
    uses += [Use("console", fb, "framebuffer console") for fb in owned(kernel, bdf, "graphics")]
    return uses


def vfio_uses(kernel: Kernel, host: HostOS, bdf: str) -> list[Use]:
    """Return the processes holding the group node or cdev of ``bdf`` (unbinding would block:
    vfio_unregister_group_dev waits, sending device requests, until they let go)."""
    bdf = validate.bdf(bdf)
    try:
        group = posixpath.basename(kernel.sysfs_readlink(f"bus/pci/devices/{bdf}/iommu_group"))
    except OSError:
        return []
    nodes = [f"/dev/vfio/{group}", f"/dev/vfio/noiommu-{group}"]
    try:
        cdevs = kernel.sysfs_listdir(f"bus/pci/devices/{bdf}/vfio-dev")
    except OSError:
        cdevs = []
    nodes += [f"/dev/vfio/devices/{validate.kname(c)}" for c in cdevs]
    return [Use("process", node, f"open by {who}") for node in nodes if kernel.exists(node)
            for who in host.openers(node)]


def check(kernel: Kernel, host: HostOS, bdf: str) -> list[Use]:
    """Return every reason ``bdf`` is in use by the host (empty: safe to unbind).

    Raises:
        ValueError: ``bdf`` is not a PCI address.
    """
    bdf = validate.bdf(bdf)
    uses = block_uses(kernel, host, bdf) + net_uses(kernel, host, bdf) + display_uses(kernel, bdf)
    try:
        vfs = int(kernel.sysfs_read(f"bus/pci/devices/{bdf}/sriov_numvfs"))
    except (OSError, ValueError):
        vfs = 0
    if vfs:  # a PF and its VFs can share a group; VFs vanish with their PF's driver
        uses.append(Use("sriov", bdf, f"{vfs} VFs enabled (pyvfio sriov clear {bdf})"))
    return uses
