"""SR-IOV: VF counts through pyvfio.host.sriov, then a PF and its VF on vfio-pci with the VF token.

Specification: drivers/pci/iov.c (sriov_numvfs_store), drivers/vfio/pci/vfio_pci.c
(vfio_pci_sriov_configure: ENOENT without ``enable_sriov``), vfio_pci_core.c
(vfio_pci_core_sriov_configure, vfio_pci_bus_notifier, vfio_pci_validate_vf_token,
vfio_pci_core_feature_token), device_cdev.c (VFIO_DEVICE_BIND_FLAG_TOKEN, 6.17+).
Real: the lane's iommufd-7.3 profile has QEMU's SR-IOV nvme (``PYVFIO_VM_SRIOV_PF``, 2 VFs) and
boots with ``vfio_pci.enable_sriov=1``.  Fake: :func:`pyvfio.fake.sriov.add_sriov` on an nvme
PF at the same address (QEMU's VF offset and stride: VFs 00:12.1, 00:12.2).  Every test leaves the
PF with 0 VFs on the driver it found it on.
"""

from __future__ import annotations

import errno
import os
import time
import uuid
from collections.abc import Iterator

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from pyvfio.fake import DeviceConfig, PCIDevice
from pyvfio.fake.bus import Driver
from pyvfio.fake.sriov import add_sriov
from pyvfio.host import sriov, vftoken
from pyvfio.kernel import Kernel
from tests.conformance.iommufd_helpers import iommufd_session
from tests.conformance.vfio_helpers import name_arg, session
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

FAKE_PF = "0000:00:12.0"
T1, T2 = uuid.UUID(int=0x7E57_0001), uuid.UUID(int=0x7E57_0002)
ENABLE_SRIOV = "module/vfio_pci/parameters/enable_sriov"


def _numvfs_path(pf: str) -> str:
    return f"bus/pci/devices/{pf}/sriov_numvfs"


def _driver(k: Kernel, bdf: str) -> str | None:
    link = f"bus/pci/devices/{bdf}/driver"
    return os.path.basename(k.sysfs_readlink(link)) if k.sysfs_exists(link) else None


def _rebind(k: Kernel, bdf: str, driver: str | None) -> None:
    """Move ``bdf`` to ``driver`` as the lane's init does (override, unbind, probe)."""
    base = f"bus/pci/devices/{bdf}"
    k.sysfs_write(f"{base}/driver_override", driver or "\n")
    current = _driver(k, bdf)
    if current is not None:
        k.sysfs_write(f"bus/pci/drivers/{current}/unbind", bdf)
    k.sysfs_write("bus/pci/drivers_probe", bdf)


@pytest.fixture
def pf(host: Host) -> Iterator[str]:
    """An SR-IOV PF (2 VFs) on its own driver; restored to 0 VFs and that driver afterwards."""
    k = host.kernel
    if host.profile == "fake":
        k.bus.add_driver(Driver("nvme", {(0x1B36, 0x0010)}))  # type: ignore[attr-defined]
        k.add_device(PCIDevice(FAKE_PF, DeviceConfig(  # type: ignore[attr-defined]
            vendor=0x1B36, device=0x0010, class_code=0x010802)), 40, "nvme")
        add_sriov(k, FAKE_PF, 2, vf_probe_rejects=frozenset({"nvme"}))  # type: ignore[arg-type]
        k.mark_clean()  # type: ignore[attr-defined]
        bdf = FAKE_PF
    else:
        bdf = os.environ.get("PYVFIO_VM_SRIOV_PF", "")
        if not bdf:
            pytest.skip(f"{host.profile}: no SR-IOV device (the lane's iommufd-7.3 has one)")
    driver = _driver(k, bdf)
    yield bdf
    if sriov.state(k, bdf).numvfs:
        sriov.set_numvfs(k, bdf, 0)
    if _driver(k, bdf) != driver:
        _rebind(k, bdf, driver)
    k.sysfs_write(f"bus/pci/devices/{bdf}/driver_override", "\n")


def test_pf_state(pf: str, host: Host) -> None:
    st = sriov.state(host.kernel, pf)
    assert (st.totalvfs, st.numvfs, st.vfs, st.vf_token_needed) == (2, 0, (), False)


def test_set_creates_vfs_linked_to_the_pf(pf: str, host: Host) -> None:
    """iov.c:sriov_add_vfs: virtfnN links on the PF, physfn on each VF; 0 removes them."""
    k = host.kernel
    st = sriov.set_numvfs(k, pf, 2)
    assert st.numvfs == 2 and len(st.vfs) == 2
    for vf in st.vfs:
        assert os.path.basename(k.sysfs_readlink(f"bus/pci/devices/{vf}/physfn")) == pf
        assert k.sysfs_exists(f"bus/pci/devices/{vf}/iommu_group")
    for vf in st.vfs:  # QEMU's nvme VFs are offline: nvme's asynchronous probe gives up
        assert _settled_unbound(k, vf)
    assert sriov.set_numvfs(k, pf, 0).vfs == ()
    assert not any(k.sysfs_exists(f"bus/pci/devices/{vf}") for vf in st.vfs)


def _settled_unbound(k: Kernel, bdf: str, seconds: float = 30.0) -> bool:
    """Wait for ``bdf`` to end up without a driver (nvme probes asynchronously: the VF is
    briefly bound before the probe fails and the driver core lets it go)."""
    deadline = time.monotonic() + seconds
    while _driver(k, bdf) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_nonzero_to_nonzero_ebusy(pf: str, host: Host) -> None:
    """iov.c:sriov_numvfs_store: VFs enabled and another nonzero count -> EBUSY; pyvfio goes
    through 0 instead."""
    k = host.kernel
    sriov.set_numvfs(k, pf, 1)
    expect_errno(errno.EBUSY, k.sysfs_write, _numvfs_path(pf), "2")
    assert sriov.set_numvfs(k, pf, 2).numvfs == 2


def test_above_totalvfs_erange(pf: str, host: Host) -> None:
    """iov.c:sriov_numvfs_store: more than sriov_totalvfs -> ERANGE (pyvfio: ValueError first)."""
    expect_errno(errno.ERANGE, host.kernel.sysfs_write, _numvfs_path(pf), "3")
    with pytest.raises(ValueError, match="above sriov_totalvfs"):
        sriov.set_numvfs(host.kernel, pf, 3)


def test_not_a_number_einval(pf: str, host: Host) -> None:
    """iov.c:sriov_numvfs_store: kstrtou16 fails -> EINVAL."""
    expect_errno(errno.EINVAL, host.kernel.sysfs_write, _numvfs_path(pf), "two")


def test_unbound_pf_enoent(pf: str, host: Host) -> None:
    """iov.c:sriov_numvfs_store: no driver -> ENOENT, named by its sriov_numvfs path."""
    _rebind(host.kernel, pf, "none-such")
    err = expect_errno(errno.ENOENT, sriov.set_numvfs, host.kernel, pf, 1)
    assert str(err.filename).endswith("sriov_numvfs")


# ------------------------------------------------------- vfio-pci PF and VF, the VF token


def _group(k: Kernel, bdf: str) -> int:
    return int(os.path.basename(k.sysfs_readlink(f"bus/pci/devices/{bdf}/iommu_group")))


@pytest.fixture
def vfio_pf(pf: str, host: Host) -> Iterator[tuple[str, str]]:
    """The PF on vfio-pci with one VF (vfio-pci's bus notifier gives the VF to vfio-pci too)."""
    k = host.kernel
    _rebind(k, pf, "vfio-pci")
    if k.sysfs_read(ENABLE_SRIOV).strip() != "Y":  # iommufd-7.3 boots with it; insmod'ed: not
        k.sysfs_write(ENABLE_SRIOV, "1")
    [vf] = sriov.set_numvfs(k, pf, 1).vfs
    assert _driver(k, vf) == "vfio-pci"
    yield pf, vf
    sriov.set_numvfs(k, pf, 0)


def test_vfio_pci_without_enable_sriov_enoent(pf: str, host: Host) -> None:
    """vfio_pci.c:vfio_pci_sriov_configure: ``enable_sriov`` off -> ENOENT."""
    k = host.kernel
    _rebind(k, pf, "vfio-pci")
    k.sysfs_write(ENABLE_SRIOV, "0")
    try:
        expect_errno(errno.ENOENT, sriov.set_numvfs, k, pf, 1)
    finally:
        k.sysfs_write(ENABLE_SRIOV, "1")


def test_vf_token_needed_is_reported(vfio_pf: tuple[str, str], host: Host) -> None:
    assert sriov.state(host.kernel, vfio_pf[0]).vf_token_needed


def test_vf_open_needs_the_token(vfio_pf: tuple[str, str], host: Host) -> None:
    """vfio_pci_validate_vf_token: a VF of a vfio-pci PF without the PF's token, or with another
    -> EACCES; with the token SET on the PF -> opens (GET_DEVICE_FD "BDF vf_token=UUID")."""
    pf, vf = vfio_pf
    assert vftoken.set_token(pf, T1, kernel=host.kernel) == T1
    with session(host) as s:
        _, g = s.ready(_group(host.kernel, vf))
        expect_errno(errno.EACCES, s.device, g, vf)
        expect_errno(errno.EACCES, s.device, g, vftoken.device_name(vf, T2))
        assert expect_ok(s.device, g, vftoken.device_name(vf, T1)) >= 0


def test_pf_open_with_vf_in_use_needs_the_token(vfio_pf: tuple[str, str], host: Host) -> None:
    """vfio_pci_validate_vf_token: PF while a VF is open -> EACCES without/with a wrong token."""
    pf, vf = vfio_pf
    vftoken.set_token(pf, T1, kernel=host.kernel)
    with session(host) as s:
        _, gv = s.ready(_group(host.kernel, vf))
        s.device(gv, vftoken.device_name(vf, T1))
        c, gp = s.container(), s.group(_group(host.kernel, pf))
        s.attach(gp, c)
        s.k.ioctl(c, uapi.VFIO_SET_IOMMU, int(C.VFIO_TYPE1v2_IOMMU))
        expect_errno(errno.EACCES, s.device, gp, pf)
        expect_errno(errno.EACCES, s.device, gp, vftoken.device_name(pf, T2))
        assert s.device(gp, vftoken.device_name(pf, T1)) >= 0


def test_pf_open_with_token_and_no_vf_users_sets_it(vfio_pf: tuple[str, str], host: Host) -> None:
    """vfio_pci_validate_vf_token: a token given for the PF while no VF is open becomes the
    token; a token for a device that is neither PF nor VF -> EINVAL."""
    pf, vf = vfio_pf
    with session(host) as s:
        _, gp = s.ready(_group(host.kernel, pf))
        s.close(s.device(gp, vftoken.device_name(pf, T2)))
        _, gv = s.ready(_group(host.kernel, vf))
        assert s.device(gv, vftoken.device_name(vf, T2)) >= 0
        if host.groups:
            _, ge = s.ready(host.edu_group)
            expect_errno(errno.EINVAL, s.k.ioctl, ge, uapi.VFIO_GROUP_GET_DEVICE_FD,
                         name_arg(vftoken.device_name(host.edu, T1)))


def _feature(flags: int) -> object:
    return new("struct vfio_device_feature *", 16, flags=C.VFIO_DEVICE_FEATURE_PCI_VF_TOKEN | flags)


def test_token_feature_set_only(vfio_pf: tuple[str, str], host: Host) -> None:
    """vfio_pci_core_feature_token: PROBE of SET -> 0, GET -> EINVAL (no reading the secret);
    on a VF (no vf_token of its own) -> ENOTTY."""
    pf, vf = vfio_pf
    vftoken.set_token(pf, T1, kernel=host.kernel)
    with session(host) as s:
        _, gp = s.ready(_group(host.kernel, pf))
        dev = s.device(gp, pf)
        probe = _feature(C.VFIO_DEVICE_FEATURE_PROBE | C.VFIO_DEVICE_FEATURE_SET)
        expect_ok(s.k.ioctl, dev, uapi.VFIO_DEVICE_FEATURE, probe)
        expect_errno(errno.EINVAL, s.k.ioctl, dev, uapi.VFIO_DEVICE_FEATURE,
                     _feature(C.VFIO_DEVICE_FEATURE_GET))
        _, gv = s.ready(_group(host.kernel, vf))
        vdev = s.device(gv, vftoken.device_name(vf, T1))
        expect_errno(errno.ENOTTY, s.k.ioctl, vdev, uapi.VFIO_DEVICE_FEATURE,
                     _feature(C.VFIO_DEVICE_FEATURE_SET))


def test_vf_cdev_bind_with_token(vfio_pf: tuple[str, str], host: Host) -> None:
    """device_cdev.c:vfio_df_ioctl_bind_iommufd (6.17+): BIND without the token -> EACCES;
    with VFIO_DEVICE_BIND_FLAG_TOKEN and the PF's token -> bound."""
    if not host.linux_at_least(6, 17):
        pytest.skip(f"Linux {host.linux}: VFIO_DEVICE_BIND_FLAG_TOKEN is 6.17+")
    pf, vf = vfio_pf
    vftoken.set_token(pf, T1, kernel=host.kernel)
    with iommufd_session(host) as s:
        [name] = host.kernel.sysfs_listdir(f"bus/pci/devices/{vf}/vfio-dev")
        fd = s.iommufd()
        cdev = s.track(s.k.open(f"/dev/vfio/devices/{name}"))
        expect_errno(errno.EACCES, s.bind, cdev, fd)
        token = ffi.new("uint8_t[16]", list(T1.bytes))
        arg = new("struct vfio_device_bind_iommufd *", argsz=ffi.sizeof(
            "struct vfio_device_bind_iommufd"), flags=C.VFIO_DEVICE_BIND_FLAG_TOKEN, iommufd=fd,
            token_uuid_ptr=int(ffi.cast("uintptr_t", token)))
        expect_ok(s.k.ioctl, cdev, uapi.VFIO_DEVICE_BIND_IOMMUFD, arg)
        assert arg.out_devid >= 1


# ------------------------------------------------------- iov.c details the fake follows


def test_same_count_needs_no_driver(pf: str, host: Host) -> None:
    """iov.c:sriov_numvfs_store: writing the current count returns before the driver check."""
    _rebind(host.kernel, pf, "none-such")
    expect_ok(host.kernel.sysfs_write, _numvfs_path(pf), "0")


def test_count_parses_like_kstrtou16(pf: str, host: Host) -> None:
    """kstrtou16(buf, 0): a 0x prefix is hex; 70000 overflows u16 -> EINVAL, not ERANGE."""
    k = host.kernel
    expect_errno(errno.EINVAL, k.sysfs_write, _numvfs_path(pf), "70000")
    expect_errno(errno.EINVAL, k.sysfs_write, _numvfs_path(pf), "-1")
    expect_ok(k.sysfs_write, _numvfs_path(pf), "0x1")
    assert sriov.state(k, pf).numvfs == 1


def test_vfs_sit_at_offset_and_stride(pf: str, host: Host) -> None:
    """pci_iov_virtfn_devfn: VF i is the PF's routing ID + sriov_offset + i * sriov_stride,
    with the PF's vendor and sriov_vf_device; each in an IOMMU group of its own."""
    k = host.kernel
    base = f"bus/pci/devices/{pf}"
    offset, stride = int(k.sysfs_read(f"{base}/sriov_offset")), int(k.sysfs_read(
        f"{base}/sriov_stride"))
    vf_device = int(k.sysfs_read(f"{base}/sriov_vf_device"), 16)
    dom, bus, slot_fn = pf.split(":")
    slot, fn = slot_fn.split(".")
    rid = int(bus, 16) << 8 | int(slot, 16) << 3 | int(fn)
    st = sriov.set_numvfs(k, pf, 2)
    want = [rid + offset + i * stride for i in range(2)]
    assert st.vfs == tuple(f"{dom}:{r >> 8:02x}:{(r >> 3) & 0x1F:02x}.{r & 7}" for r in want)
    for vf in st.vfs:
        assert int(k.sysfs_read(f"bus/pci/devices/{vf}/device"), 16) == vf_device
        assert k.sysfs_read(f"bus/pci/devices/{vf}/vendor") == k.sysfs_read(f"{base}/vendor")
    groups = {_group(k, vf) for vf in st.vfs} | {_group(k, pf)}
    assert len(groups) == 3


def test_vf_of_vfio_pf_gets_vfio_pci_override(vfio_pf: tuple[str, str], host: Host) -> None:
    """vfio_pci_bus_notifier: a VF of a vfio-pci PF gets driver_override vfio-pci."""
    assert host.kernel.sysfs_read(f"bus/pci/devices/{vfio_pf[1]}/driver_override") == "vfio-pci"


def test_override_probes_vfs_without_autoprobe(pf: str, host: Host) -> None:
    """pci_device_can_probe: with sriov_drivers_autoprobe 0 a VF still probes when it has a
    driver_override, so a vfio-pci PF's VFs (override from its bus notifier) bind anyway."""
    k = host.kernel
    _rebind(k, pf, "vfio-pci")
    k.sysfs_write(ENABLE_SRIOV, "1")
    k.sysfs_write(f"bus/pci/devices/{pf}/sriov_drivers_autoprobe", "0")
    try:
        assert k.sysfs_read(f"bus/pci/devices/{pf}/sriov_drivers_autoprobe") == "0"
        [vf] = sriov.set_numvfs(k, pf, 1).vfs
        assert _driver(k, vf) == "vfio-pci"
    finally:
        k.sysfs_write(f"bus/pci/devices/{pf}/sriov_drivers_autoprobe", "1")


def test_vfio_pci_disable_needs_enable_sriov(vfio_pf: tuple[str, str], host: Host) -> None:
    """vfio_pci_sriov_configure checks enable_sriov before anything: disabling VFs is ENOENT
    too while it is off."""
    k = host.kernel
    k.sysfs_write(ENABLE_SRIOV, "0")
    try:
        expect_errno(errno.ENOENT, k.sysfs_write, _numvfs_path(vfio_pf[0]), "0")
        assert sriov.state(k, vfio_pf[0]).numvfs == 1
    finally:
        k.sysfs_write(ENABLE_SRIOV, "1")


def test_token_feature_on_a_non_pf_enotty(host: Host) -> None:
    """vfio_pci_core_feature_token: a device without SR-IOV has no vf_token -> ENOTTY."""
    assert host.edu  # skips first where there is no edu
    with session(host) as s:
        _, _, dev = s.edu()
        expect_errno(errno.ENOTTY, s.k.ioctl, dev, uapi.VFIO_DEVICE_FEATURE,
                     _feature(C.VFIO_DEVICE_FEATURE_SET))
