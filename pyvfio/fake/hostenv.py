"""The host around the fake PCI bus: disks, network interfaces, consoles, mdev parents, SR-IOV,
IOMMU firmware and modules, plus :class:`FakeHostOS` (mounts, swaps, routes, addresses, rlimits).

Everything is added to a :class:`FakeKernel`'s sysfs through :class:`SysfsTree`'s public API, laid
out as Linux lays it out (``class/block/<name>`` linking under the PCI device, ``holders/``,
``dev``; ``class/net/<name>/flags``; ``mdev_supported_types``; ``sriov_numvfs`` with iov.c's
errnos), so the host tooling runs unchanged on it.
"""

from __future__ import annotations

import errno
import functools
import os
import posixpath
from dataclasses import dataclass, field

from pyvfio.disksig import SIGNATURES, head_with  # SIGNATURES re-exported
from pyvfio.fake.kernel import FakeKernel
from pyvfio.fake.memory import kerr
from pyvfio.fake.sriov import add_sriov  # re-exported: the SR-IOV PF model lives there

EXT4_HEAD = head_with("ext2/3/4 filesystem")


@dataclass
class FakeHostOS:
    """Host state outside sysfs, as plain data; implements :class:`pyvfio.host.hostos.HostOS`."""

    mounts: list[tuple[str, str]] = field(default_factory=list)  # (major:minor, mountpoint)
    swaps: list[str] = field(default_factory=list)  # block device names
    routes: list[tuple[str, str]] = field(default_factory=list)  # (ifname, "a.b.c.d/len")
    addresses: dict[str, list[str]] = field(default_factory=dict)  # ifname -> IPv4 addresses
    heads: dict[str, bytes] = field(default_factory=dict)  # block device -> first bytes
    cmdline: str = "BOOT_IMAGE=/vmlinuz root=/dev/vda1 intel_iommu=on"
    memlock_limit: tuple[int, int] = (-1, -1)
    cap_eff: int = 0  # /proc/self/status CapEff: the effective capability bits
    users: dict[str, tuple[int, int]] = field(default_factory=lambda: {"alice": (1000, 1000)})
    owners: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # chown/chmod log
    modprobe_log: list[str] = field(default_factory=list)
    modprobe_errno: int = 0
    holders: dict[str, list[str]] = field(default_factory=dict)  # /dev path -> "pid (comm)"

    def read_proc(self, name: str) -> str:
        if name == "self/mountinfo":
            return "".join(f"{20 + i} 1 {dev} / {mp} rw - ext4 /dev/x rw\n"
                           for i, (dev, mp) in enumerate(self.mounts))
        if name == "swaps":
            return "Filename Type Size Used Priority\n" + "".join(
                f"/dev/{s} partition 1048572 0 -2\n" for s in self.swaps)
        if name == "net/route":
            out = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
            for ifname, cidr in self.routes:
                addr, plen = cidr.split("/")
                dest = int.from_bytes(bytes(int(x) for x in addr.split(".")), "little")
                mask = int.from_bytes(((1 << 32) - (1 << (32 - int(plen)))).to_bytes(4, "big"),
                                      "little")
                out += f"{ifname}\t{dest:08X}\t00000000\t0001\t0\t0\t0\t{mask:08X}\n"
            return out
        if name in ("net/ipv6_route", "net/if_inet6"):
            return ""
        if name == "cmdline":
            return self.cmdline + "\n"
        if name == "self/status":
            return f"Name:\tpython3\nCapEff:\t{self.cap_eff:016x}\n"
        raise kerr(errno.ENOENT, f"/proc/{name}")

    def ipv4_addresses(self, ifname: str) -> list[str]:
        return list(self.addresses.get(ifname, []))

    def read_block_head(self, devname: str, size: int) -> bytes:
        if devname not in self.heads:
            raise kerr(errno.ENOENT, f"/dev/{devname}")
        return self.heads[devname][:size]

    def memlock(self) -> tuple[int, int]:
        return self.memlock_limit

    def chown(self, path: str, uid: int, gid: int, mode: int) -> None:
        self.owners[path] = (uid, gid, mode)

    def user_ids(self, user: str) -> tuple[int, int]:
        return self.users[user]

    def modprobe(self, module: str) -> None:
        self.modprobe_log.append(module)
        if self.modprobe_errno:
            raise OSError(self.modprobe_errno, os.strerror(self.modprobe_errno), module)

    def openers(self, path: str) -> list[str]:
        return list(self.holders.get(path, []))


def add_disk(kernel: FakeKernel, host: FakeHostOS, bdf: str, name: str, *,
             partitions: int = 0, head: bytes = b"", major: int = 259) -> list[str]:
    """Put block device ``name`` (and ``nameP1..``) under PCI device ``bdf``; return the names.

    Each gets ``dev``, ``holders/``; ``head`` (default: zeros, no signature) is what reading its
    first bytes returns.
    """
    names = [name] + [f"{name}p{i}" for i in range(1, partitions + 1)]
    disk = f"bus/pci/devices/{bdf}/nvme/nvme0/{name}"
    for i, n in enumerate(names):
        path = disk if i == 0 else f"{disk}/{n}"
        kernel.sysfs.add_attr(f"{path}/dev", f"{major}:{i}\n")
        kernel.sysfs.mkdir(f"{path}/holders")
        kernel.sysfs.symlink(f"class/block/{n}", path)
        host.heads[n] = head if i == 0 else b""
    return names


def hold(kernel: FakeKernel, disk: str, holder: str) -> None:
    """Make ``holder`` (``dm-0``) a holder of block device ``disk``."""
    real = posixpath.normpath(posixpath.join("class/block",
                                             kernel.sysfs_readlink(f"class/block/{disk}")))
    kernel.sysfs.symlink(f"{real}/holders/{holder}", f"devices/virtual/block/{holder}")


def mount(kernel: FakeKernel, host: FakeHostOS, disk: str, mountpoint: str) -> None:
    """Mount block device ``disk`` on ``mountpoint``."""
    host.mounts.append((kernel.sysfs_read(f"class/block/{disk}/dev"), mountpoint))


def add_netdev(kernel: FakeKernel, host: FakeHostOS, bdf: str, name: str, *, up: bool = True,
               addresses: tuple[str, ...] = (), routes: tuple[str, ...] = ()) -> None:
    """Put network interface ``name`` under ``bdf``: up or down, with IPv4 addresses and routes."""
    path = f"bus/pci/devices/{bdf}/net/{name}"
    kernel.sysfs.add_attr(f"{path}/flags", "0x1003\n" if up else "0x1002\n")
    kernel.sysfs.add_attr(f"{path}/operstate", "up\n" if up else "down\n")
    kernel.sysfs.symlink(f"class/net/{name}", path)
    host.addresses[name] = list(addresses)
    host.routes += [(name, r) for r in routes]


def boot_vga(kernel: FakeKernel, bdf: str, fb: str | None = "fb0") -> None:
    """Make ``bdf`` the boot VGA device, with framebuffer console ``fb``."""
    kernel.sysfs.add_attr(f"bus/pci/devices/{bdf}/boot_vga", "1\n")
    if fb:
        kernel.sysfs.add_attr(f"bus/pci/devices/{bdf}/graphics/{fb}/dev", "29:0\n")
        kernel.sysfs.symlink(f"class/graphics/{fb}", f"bus/pci/devices/{bdf}/graphics/{fb}")


def iommu_host(kernel: FakeKernel, *, vendor: str = "intel", ir: bool = True,
               modules: tuple[str, ...] = ("vfio", "vfio_pci", "vfio_iommu_type1")) -> None:
    """Give the host an IOMMU as the firmware and kernel show it, and loaded modules."""
    kernel.sysfs.add_attr(f"firmware/acpi/tables/{'DMAR' if vendor == 'intel' else 'IVRS'}", "")
    unit = "dmar0" if vendor == "intel" else "ivhd0"
    kernel.sysfs.mkdir(f"devices/virtual/iommu/{unit}")
    if vendor == "intel":
        kernel.sysfs.add_attr(f"devices/virtual/iommu/{unit}/intel-iommu/ecap",
                              "f0205e" if ir else "f02056")
    kernel.sysfs.symlink(f"class/iommu/{unit}", f"devices/virtual/iommu/{unit}")
    for m in modules:
        kernel.sysfs.mkdir(f"module/{m}")
    kernel.sysfs.add_attr("kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "0\n")


def _avail(left: dict[str, int], t: str) -> str:
    return f"{left[t]}\n"


def add_mdev_parent(kernel: FakeKernel, bdf: str, types: dict[str, int]) -> None:
    """Make ``bdf`` an mdev parent offering ``types`` (name -> instances); create/remove work
    as drivers/vfio/mdev does (EINVAL bad UUID, EEXIST duplicate, EUSERS none left)."""
    base = f"bus/pci/devices/{bdf}/mdev_supported_types"
    kernel.sysfs.symlink(f"class/mdev_bus/{bdf}", f"bus/pci/devices/{bdf}")
    left = dict(types)
    for t in types:
        d = f"{base}/{t}"
        kernel.sysfs.add_attr(f"{d}/name", f"{t}\n")
        kernel.sysfs.add_attr(f"{d}/device_api", "vfio-pci\n")
        kernel.sysfs.add_attr(f"{d}/available_instances", functools.partial(_avail, left, t))
        kernel.sysfs.mkdir(f"{d}/devices")

        def create(value: str, t: str = t, d: str = d) -> None:
            u = value.strip()
            if len(u) != 36 or u.count("-") != 4:
                raise kerr(errno.EINVAL)
            if kernel.sysfs.exists(f"bus/mdev/devices/{u}"):
                raise kerr(errno.EEXIST)
            if left[t] == 0:
                raise kerr(errno.EUSERS)
            left[t] -= 1
            dev = f"bus/pci/devices/{bdf}/{u}"
            kernel.sysfs.symlink(f"{dev}/mdev_type", d)
            kernel.sysfs.add_attr(f"{dev}/remove", "", functools.partial(drop, u, t, dev))
            kernel.sysfs.symlink(f"bus/mdev/devices/{u}", dev)
            kernel.sysfs.symlink(f"{d}/devices/{u}", dev)

        def drop(u: str, t: str, dev: str, _value: str, d: str = d) -> None:
            left[t] += 1
            for p in (f"bus/mdev/devices/{u}", f"{d}/devices/{u}", dev):
                kernel.sysfs.remove(p)

        kernel.sysfs.add_attr(f"{d}/create", "", create)


__all__ = ["EXT4_HEAD", "SIGNATURES", "FakeHostOS", "add_disk", "add_mdev_parent", "add_netdev",
           "add_sriov", "boot_vga", "hold", "iommu_host", "mount"]
