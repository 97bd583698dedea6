"""Host check: is this machine ready for VFIO, and for each problem, the exact fix.

Each check reads sysfs through the ``Kernel`` and /proc, rlimits through :class:`HostOS`, and
returns :class:`Check` records: ``ok``, ``info``, ``warn`` (works, but not as well as it could)
or ``fail`` (VFIO will not work until the fix is applied).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from pyvfio.host.hostos import HostOS
from pyvfio.kernel import Kernel

OK, INFO, WARN, FAIL = "ok", "info", "warn", "fail"
DEFAULT_PLANNED = 64 << 20  # SPDK and dpdk-devbind warn under 64 MiB
CAP_IPC_LOCK = 14  # include/uapi/linux/capability.h
ECAP_IR = 1 << 3  # VT-d extended capability: interrupt remapping (intel-iommu.h ecap_ir_support)
GRUB_FIX = ("add {args} to GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub "
            "(grub2-mkconfig -o /boot/grub2/grub.cfg on Fedora), reboot")


@dataclass(frozen=True)
class Check:
    """One finding: a short name, its status, what was seen, and the fix (None when fine)."""

    name: str
    status: str
    summary: str
    fix: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return asdict(self)


def _ls(kernel: Kernel, path: str) -> list[str]:
    try:
        return kernel.sysfs_listdir(path)
    except OSError:
        return []


def _read(kernel: Kernel, path: str) -> str | None:
    try:
        return kernel.sysfs_read(path)
    except OSError:
        return None


def _vendor(kernel: Kernel) -> str:
    tables = _ls(kernel, "firmware/acpi/tables")
    for table, vendor in (("DMAR", "intel"), ("IVRS", "amd"), ("IORT", "arm")):
        if table in tables:
            return vendor
    return ""


def check_iommu(kernel: Kernel, host: HostOS) -> list[Check]:
    """Firmware tables, hardware IOMMUs in /sys/class/iommu, groups, the kernel command line."""
    vendor, units = _vendor(kernel), _ls(kernel, "class/iommu")
    try:
        cmdline = host.read_proc("cmdline").split()
    except OSError:
        cmdline = []
    iommu_args = [a for a in cmdline if a.split("=")[0] in
                  ("intel_iommu", "amd_iommu", "iommu", "iommu.passthrough", "iommu.strict")]
    table = {"intel": "DMAR (Intel VT-d)", "amd": "IVRS (AMD-Vi)", "arm": "IORT (Arm SMMU)"}
    out = [Check("cmdline", INFO, "IOMMU kernel arguments: " + (" ".join(iommu_args) or "none"))]
    if "nomodule" in cmdline:
        out.append(Check("nomodule", WARN, "the kernel was booted with 'nomodule': modules "
                         "cannot be loaded, VFIO must be built in", "remove nomodule from the "
                         "kernel command line"))
    groups = _ls(kernel, "kernel/iommu_groups")
    if not vendor and not units and not groups:
        out.append(Check("iommu-firmware", FAIL, "no DMAR/IVRS/IORT ACPI table: the firmware "
                         "exposes no IOMMU",
                         "enable VT-d / AMD-Vi (IOMMU) in the firmware setup; in a VM, give the "
                         "guest a vIOMMU (QEMU: -device intel-iommu,intremap=on)"))
    elif vendor:
        out.append(Check("iommu-firmware", OK, f"{table[vendor]} table present"))
    if groups:
        out.append(Check("iommu-enabled", OK, f"{len(groups)} IOMMU groups, IOMMU units: "
                         f"{', '.join(units) or 'none listed'}"))
    elif vendor:
        arg = "intel_iommu=on" if vendor == "intel" else "amd_iommu=on"
        out.append(Check("iommu-enabled", FAIL, "the firmware has an IOMMU but the kernel did not "
                         "enable it (no /sys/class/iommu entries, no IOMMU groups)",
                         GRUB_FIX.format(args=f"{arg} iommu=pt")))
    return out


def check_domains(kernel: Kernel) -> list[Check]:
    """Default domain types of the groups (identity = passthrough, DMA/DMA-FQ = translated)."""
    types: dict[str, int] = {}
    for g in _ls(kernel, "kernel/iommu_groups"):
        t = _read(kernel, f"kernel/iommu_groups/{g}/type") or "unknown"
        types[t] = types.get(t, 0) + 1
    if not types:
        return []
    seen = ", ".join(f"{n} {t}" for t, n in sorted(types.items()))
    mode = "passthrough (iommu=pt)" if set(types) == {"identity"} else "translated"
    return [Check("default-domain", INFO, f"host default domains: {seen}: {mode}; VFIO always "
                  "gives its devices their own translated domain")]


def check_irq_remap(kernel: Kernel) -> list[Check]:
    """Interrupt remapping, without which vfio_iommu_type1 refuses to attach a group."""
    unsafe = _read(kernel, "module/vfio_iommu_type1/parameters/allow_unsafe_interrupts")
    caps = []
    for unit in _ls(kernel, "class/iommu"):
        ecap = _read(kernel, f"class/iommu/{unit}/intel-iommu/ecap")
        if ecap is not None:
            caps.append(bool(int(ecap, 16) & ECAP_IR))
    if caps and not all(caps):
        status = WARN if unsafe == "Y" else FAIL
        return [Check("interrupt-remapping", status, "an Intel IOMMU unit has no interrupt "
                      "remapping" + ("; allow_unsafe_interrupts=Y accepts it" if unsafe == "Y"
                                     else ": attaching a group fails with EPERM"),
                      "give the guest intremap=on, or (unsafe) modprobe vfio_iommu_type1 "
                      "allow_unsafe_interrupts=1")]
    if caps:
        return [Check("interrupt-remapping", OK, "supported by every IOMMU unit")]
    if unsafe == "Y":
        return [Check("interrupt-remapping", WARN, "allow_unsafe_interrupts=Y is set",
                      "remove allow_unsafe_interrupts from /etc/modprobe.d once remapping works")]
    return []


def check_modules(kernel: Kernel) -> list[Check]:
    """vfio, vfio_pci, vfio_iommu_type1 (needed) and iommufd (optional)."""
    out = []
    for mod, need in (("vfio", True), ("vfio_pci", True), ("vfio_iommu_type1", True),
                      ("iommufd", False)):
        if kernel.sysfs_exists(f"module/{mod}"):
            out.append(Check(f"module-{mod}", OK, f"{mod} is loaded (or built in)"))
        else:
            out.append(Check(f"module-{mod}", FAIL if need else INFO, f"{mod} is not loaded",
                             f"modprobe {mod}; to load it at boot: echo {mod} > "
                             f"/etc/modules-load.d/{mod}.conf"))
    return out


def check_nodes(kernel: Kernel) -> list[Check]:
    """/dev/vfio/vfio, /dev/iommu and the per-device cdevs; no-IOMMU mode."""
    out = []
    if kernel.exists("/dev/vfio/vfio"):
        out.append(Check("dev-vfio", OK, "/dev/vfio/vfio exists (legacy container API)"))
    else:
        out.append(Check("dev-vfio", FAIL, "/dev/vfio/vfio is missing", "modprobe vfio"))
    if kernel.exists("/dev/iommu"):
        out.append(Check("dev-iommu", OK, "/dev/iommu exists (iommufd available)"))
    else:
        out.append(Check("dev-iommu", INFO, "/dev/iommu is missing: iommufd mode unavailable, the "
                         "legacy container API will be used",
                         "modprobe iommufd (needs CONFIG_IOMMUFD; Debian stock kernels lack it)"))
    cdev = kernel.exists("/dev/vfio/devices")
    out.append(Check("vfio-cdev", OK if cdev else INFO,
                     "/dev/vfio/devices exists (VFIO device cdevs)" if cdev else
                     "no /dev/vfio/devices: the kernel has no CONFIG_VFIO_DEVICE_CDEV"))
    if _read(kernel, "module/vfio/parameters/enable_unsafe_noiommu_mode") == "Y":
        out.append(Check("noiommu", WARN, "unsafe no-IOMMU mode is on: devices can DMA anywhere",
                         "echo 0 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode"))
    return out


def has_cap_ipc_lock(host: HostOS) -> bool:
    """Tell whether this process has CAP_IPC_LOCK (CapEff of /proc/self/status): type1 and
    iommufd skip the RLIMIT_MEMLOCK accounting for it (vfio_iommu_type1.c:vfio_pin_pages_remote
    ``lock_cap``, iommufd/pages.c), whatever the uid."""
    try:
        status = host.read_proc("self/status")
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            try:
                return bool(int(line.split(":", 1)[1].strip(), 16) >> CAP_IPC_LOCK & 1)
            except ValueError:
                return False
    return False


def check_memory(kernel: Kernel, host: HostOS, planned: int) -> list[Check]:
    """RLIMIT_MEMLOCK against the planned mapping size; hugepages reserved."""
    soft, _hard = host.memlock()
    out = []
    if soft != -1 and soft < planned and has_cap_ipc_lock(host):
        out.append(Check("memlock", OK, f"RLIMIT_MEMLOCK is {soft >> 10} KiB, but this process "
                         "has CAP_IPC_LOCK, which lifts the limit for VFIO and iommufd pinning"))
    elif soft != -1 and soft < planned:
        mib = -(-planned // (1 << 20))
        out.append(Check("memlock", FAIL, f"RLIMIT_MEMLOCK is {soft >> 10} KiB, under the "
                         f"{mib} MiB you plan to map (type1 pins every mapped page)",
                         f"ulimit -l {mib * 1024} (shell), LimitMEMLOCK={mib}M (systemd unit), or "
                         f"'<user> - memlock {mib * 1024}' in /etc/security/limits.conf"))
    else:
        shown = "unlimited" if soft == -1 else f"{soft >> 20} MiB"
        out.append(Check("memlock", OK, f"RLIMIT_MEMLOCK is {shown}"))
    pools = []
    for size in _ls(kernel, "kernel/mm/hugepages"):
        total = _read(kernel, f"kernel/mm/hugepages/{size}/nr_hugepages")
        free = _read(kernel, f"kernel/mm/hugepages/{size}/free_hugepages")
        if total and total != "0":
            pools.append(f"{size.removeprefix('hugepages-')}: {free}/{total} free")
    out.append(Check("hugepages", OK if pools else INFO, ", ".join(pools) or "no hugepages "
                     "reserved (optional; fewer IOMMU entries for large buffers)",
                     None if pools else "echo 512 > "
                     "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"))
    return out


def run(kernel: Kernel, host: HostOS, planned: int = DEFAULT_PLANNED) -> list[Check]:
    """Run every check; the order is the order of the report."""
    steps: list[Callable[[], list[Check]]] = [
        lambda: check_iommu(kernel, host), lambda: check_domains(kernel),
        lambda: check_irq_remap(kernel), lambda: check_modules(kernel),
        lambda: check_nodes(kernel), lambda: check_memory(kernel, host, planned),
    ]
    return [c for step in steps for c in step()]
