"""HWPTs: allocation, attachment, dirty tracking, invalidation, fault queues, hw info.

Specification: drivers/iommu/iommufd/hw_pagetable.c, device.c, fault.c and the selftest's
``iommufd_ioas.get_hw_info`` / ``iommufd_dirty_tracking`` / ``iommufd_fault`` cases.  QEMU's
intel-iommu has no dirty tracking, nesting or page requests, so those run on the fake only.
"""

from __future__ import annotations

import errno
from typing import Any

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from pyvfio.fake.vtd import LANE_OPTIONS, hw_info_vtd, qemu_vtd_registers
from pyvfio.vm.profiles import PROFILES
from tests.conformance.iommufd_helpers import PAGE, addr, hw_capabilities, iommufd_session
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

DIRTY = C.IOMMU_HWPT_ALLOC_DIRTY_TRACKING
NO_DIRTY_ON_VIOMMU = "QEMU's intel-iommu (and the mock profile's missing devices) lack it"


def test_hw_info_unknown_device_enoent(host: Host) -> None:
    """iommufd.c:get_hw_info (no device): IOMMU_GET_HW_INFO of a non-device id -> ENOENT."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        arg = new("struct iommu_hw_info *", dev_id=s.ioas(fd))
        expect_errno(errno.ENOENT, s.k.ioctl, fd, uapi.IOMMU_GET_HW_INFO, arg)


def test_hw_info_reports_driver_data_length(host: Host) -> None:
    """device.c:iommufd_get_hw_info: with data_len 0 the kernel writes back its data length."""
    with iommufd_session(host) as s:
        fd, _, _, dev_id = s.bound_edu()
        arg = new("struct iommu_hw_info *", dev_id=dev_id)
        expect_ok(s.k.ioctl, fd, uapi.IOMMU_GET_HW_INFO, arg)
        assert arg.data_len > 0 and arg.out_data_type != 0  # VT-d: iommu_hw_info_vtd


def test_hw_info_flags_eopnotsupp(host: Host) -> None:
    """device.c:iommufd_get_hw_info: flags without meaning here -> EOPNOTSUPP (6.12: any)."""
    with iommufd_session(host) as s:
        fd, _, _, dev_id = s.bound_edu()
        arg = new("struct iommu_hw_info *", dev_id=dev_id, flags=0x80)
        expect_errno(errno.EOPNOTSUPP, s.k.ioctl, fd, uapi.IOMMU_GET_HW_INFO, arg)


def _filled(size: int) -> Any:
    """A buffer of ``size`` bytes 0xa5 (to see what the kernel writes and zeroes)."""
    buf = ffi.new(f"uint8_t[{size}]")
    ffi.memmove(buf, b"\xa5" * size, size)
    return buf


def _vtd_options(host: Host) -> str:
    """The intel-iommu options of the host: the lane profile's, the fake's model for the fake."""
    if host.profile == "fake":
        return LANE_OPTIONS
    viommu = PROFILES[host.profile].viommu
    assert viommu, f"{host.profile} has no vIOMMU but bound an edu"
    return viommu


def test_hw_info_vtd_is_qemus_registers(host: Host) -> None:
    """intel/iommu.c:intel_iommu_hw_info: struct iommu_hw_info_vtd = the ERRATA_772415 flag and
    CAP_REG/ECAP_REG as QEMU 7.2's vtd_init composes them from the profile's intel-iommu options
    (24 bytes; the rest of a larger buffer zeroed, device.c:iommufd_get_hw_info)."""
    with iommufd_session(host) as s:
        fd, _, _, dev_id = s.bound_edu()
        buf = _filled(64)
        arg = new("struct iommu_hw_info *", dev_id=dev_id, data_len=64, data_uptr=addr(buf))
        expect_ok(s.k.ioctl, fd, uapi.IOMMU_GET_HW_INFO, arg)
        assert arg.out_data_type == C.IOMMU_HW_INFO_TYPE_INTEL_VTD and arg.data_len == 24
        cap, ecap = qemu_vtd_registers(_vtd_options(host))
        got = bytes(ffi.buffer(buf))
        assert got[:24].hex() == hw_info_vtd(cap, ecap).hex()
        assert got[24:] == bytes(40)


def test_hw_info_short_buffer_gets_a_prefix(host: Host) -> None:
    """device.c:iommufd_get_hw_info: data_len below the driver's copies that many bytes only and
    still writes back the full length."""
    with iommufd_session(host) as s:
        fd, _, _, dev_id = s.bound_edu()
        buf = _filled(16)
        arg = new("struct iommu_hw_info *", dev_id=dev_id, data_len=12, data_uptr=addr(buf))
        expect_ok(s.k.ioctl, fd, uapi.IOMMU_GET_HW_INFO, arg)
        want = hw_info_vtd(*qemu_vtd_registers(_vtd_options(host)))
        assert bytes(ffi.buffer(buf)) == want[:12] + b"\xa5" * 4 and arg.data_len == 24


def test_hw_info_capabilities_by_version(host: Host) -> None:
    """device.c:iommufd_get_hw_info: QEMU's intel-iommu has no dirty tracking and (without
    device-iotlb) gives no device ATS: 6.12 reports no capability, 7.3 PCI_ATS_NOT_SUPPORTED;
    the edu has no PASID capability (out_max_pasid_log2 0)."""
    with iommufd_session(host) as s:
        fd, _, _, dev_id = s.bound_edu()
        arg = new("struct iommu_hw_info *", dev_id=dev_id, out_max_pasid_log2=7)
        expect_ok(s.k.ioctl, fd, uapi.IOMMU_GET_HW_INFO, arg)
        ats = C.IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED if host.linux_at_least(7, 3) else 0
        assert (arg.out_capabilities, arg.out_max_pasid_log2) == (ats, 0)


def test_hw_info_input_type_by_version(host: Host) -> None:
    """device.c:iommufd_get_hw_info: 7.3's IOMMU_HW_INFO_FLAG_INPUT_TYPE asks for one data type:
    the driver's (or DEFAULT) works, another -> EOPNOTSUPP (intel_iommu_hw_info); 6.12 knows no
    flag (EOPNOTSUPP)."""
    with iommufd_session(host) as s:
        fd, _, _, dev_id = s.bound_edu()
        flag = C.IOMMU_HW_INFO_FLAG_INPUT_TYPE
        if not host.linux_at_least(7, 3):
            arg = new("struct iommu_hw_info *", dev_id=dev_id, flags=flag,
                      in_data_type=C.IOMMU_HW_INFO_TYPE_INTEL_VTD)
            expect_errno(errno.EOPNOTSUPP, s.k.ioctl, fd, uapi.IOMMU_GET_HW_INFO, arg)
            return
        for in_type in (C.IOMMU_HW_INFO_TYPE_INTEL_VTD, C.IOMMU_HW_INFO_TYPE_DEFAULT):
            arg = new("struct iommu_hw_info *", dev_id=dev_id, flags=flag, in_data_type=in_type)
            expect_ok(s.k.ioctl, fd, uapi.IOMMU_GET_HW_INFO, arg)
            assert arg.out_data_type == C.IOMMU_HW_INFO_TYPE_INTEL_VTD
        arg = new("struct iommu_hw_info *", dev_id=dev_id, flags=flag,
                  in_data_type=C.IOMMU_HW_INFO_TYPE_ARM_SMMUV3)
        expect_errno(errno.EOPNOTSUPP, s.k.ioctl, fd, uapi.IOMMU_GET_HW_INFO, arg)
        arg = new("struct iommu_hw_info *", dev_id=dev_id,
                  in_data_type=C.IOMMU_HW_INFO_TYPE_ARM_SMMUV3)  # no flag: the type is ignored
        expect_ok(s.k.ioctl, fd, uapi.IOMMU_GET_HW_INFO, arg)


def test_alloc_paging_hwpt_pins_ioas(host: Host) -> None:
    """hw_pagetable.c:iommufd_hwpt_alloc: a manual HWPT holds its IOAS (destroy -> EBUSY)."""
    with iommufd_session(host) as s:
        fd, ioas, _, dev_id = s.bound_edu()
        hwpt = s.hwpt(fd, dev_id, ioas)
        expect_errno(errno.EBUSY, s.destroy, fd, ioas)
        expect_ok(s.destroy, fd, hwpt)
        expect_ok(s.destroy, fd, ioas)


def test_alloc_bad_pt_id_einval(host: Host) -> None:
    """hw_pagetable.c:iommufd_hwpt_alloc: an unknown pt_id -> EINVAL (not ENOENT)."""
    with iommufd_session(host) as s:
        fd, _, _, dev_id = s.bound_edu()
        expect_errno(errno.EINVAL, s.hwpt, fd, dev_id, 1000)


def test_alloc_unknown_device_enoent(host: Host) -> None:
    """hw_pagetable.c:iommufd_hwpt_alloc: a dev_id that is no device -> ENOENT."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        expect_errno(errno.ENOENT, s.hwpt, fd, ioas, ioas)


def test_alloc_reserved_eopnotsupp(host: Host) -> None:
    """hw_pagetable.c:iommufd_hwpt_alloc: __reserved != 0 -> EOPNOTSUPP."""
    with iommufd_session(host) as s:
        fd, ioas, _, dev_id = s.bound_edu()
        arg = new("struct iommu_hwpt_alloc *", dev_id=dev_id, pt_id=ioas, __reserved=1)
        expect_errno(errno.EOPNOTSUPP, s.k.ioctl, fd, uapi.IOMMU_HWPT_ALLOC, arg)


def _alloc(s: Any, fd: int, **fields: int) -> int:
    arg = new("struct iommu_hwpt_alloc *", **fields)
    s.k.ioctl(fd, uapi.IOMMU_HWPT_ALLOC, arg)
    return int(arg.out_hwpt_id)


def _fault_queue(s: Any, fd: int) -> int:
    arg = new("struct iommu_fault_alloc *")
    s.k.ioctl(fd, uapi.IOMMU_FAULT_QUEUE_ALLOC, arg)
    s.track(int(arg.out_fault_fd))
    return int(arg.out_fault_id)


def test_alloc_paging_with_data_eopnotsupp(host: Host) -> None:
    """intel/iommu.c (domain_alloc_user on 6.12, domain_alloc_paging_flags on 7.3): a paging
    domain takes no user data -> EOPNOTSUPP, whatever the data type (not EINVAL)."""
    with iommufd_session(host) as s:
        fd, ioas, _, dev_id = s.bound_edu()
        data = s.buffer()
        for data_type in (C.IOMMU_HWPT_DATA_VTD_S1, 0x63):
            expect_errno(errno.EOPNOTSUPP, _alloc, s, fd, dev_id=dev_id, pt_id=ioas,
                         data_type=data_type, data_len=24, data_uptr=data)


def test_alloc_nested_checks_flags_and_data_before_parent(host: Host) -> None:
    """hw_pagetable.c:iommufd_hwpt_nested_alloc: no data (or unknown flags) -> EOPNOTSUPP before
    the parent's kind; data under a parent that is no nesting parent -> EINVAL."""
    with iommufd_session(host) as s:
        fd, ioas, _, dev_id = s.bound_edu()
        parent = s.hwpt(fd, dev_id, ioas)
        expect_errno(errno.EOPNOTSUPP, _alloc, s, fd, dev_id=dev_id, pt_id=parent)
        expect_errno(errno.EOPNOTSUPP, _alloc, s, fd, dev_id=dev_id, pt_id=parent, flags=1 << 7,
                     data_type=C.IOMMU_HWPT_DATA_VTD_S1, data_len=24, data_uptr=s.buffer())
        expect_errno(errno.EINVAL, _alloc, s, fd, dev_id=dev_id, pt_id=parent,
                     data_type=C.IOMMU_HWPT_DATA_VTD_S1, data_len=24, data_uptr=s.buffer())


def test_alloc_paging_fault_queue_by_version(host: Host) -> None:
    """hw_pagetable.c:iommufd_hwpt_paging_alloc: 6.12 refuses FAULT_ID_VALID in a paging alloc
    (EOPNOTSUPP, before the fault id is looked up); 7.3 takes it, then an id that is no fault
    queue -> ENOENT and a fault queue's id works."""
    with iommufd_session(host) as s:
        fd, ioas, _, dev_id = s.bound_edu()
        fault = _fault_queue(s, fd)
        valid = C.IOMMU_HWPT_FAULT_ID_VALID
        if not host.linux_at_least(7, 3):
            for fault_id in (fault, ioas, 1000):
                expect_errno(errno.EOPNOTSUPP, _alloc, s, fd, dev_id=dev_id, pt_id=ioas,
                             flags=valid, fault_id=fault_id)
            return
        for fault_id in (ioas, 1000):
            expect_errno(errno.ENOENT, _alloc, s, fd, dev_id=dev_id, pt_id=ioas, flags=valid,
                         fault_id=fault_id)
        hwpt = _alloc(s, fd, dev_id=dev_id, pt_id=ioas, flags=valid, fault_id=fault)
        expect_errno(errno.EBUSY, s.destroy, fd, fault)  # the HWPT holds its fault queue
        expect_ok(s.destroy, fd, hwpt)


def test_alloc_paging_pasid_flag_by_version(host: Host) -> None:
    """hw_pagetable.c:iommufd_hwpt_paging_alloc: IOMMU_HWPT_ALLOC_PASID is an unknown flag on
    6.12 (EOPNOTSUPP); 7.3 knows it and intel-iommu gives a PASID-capable paging domain."""
    with iommufd_session(host) as s:
        fd, ioas, _, dev_id = s.bound_edu()
        if not host.linux_at_least(7, 3):
            expect_errno(errno.EOPNOTSUPP, s.hwpt, fd, dev_id, ioas, C.IOMMU_HWPT_ALLOC_PASID)
            return
        expect_ok(s.destroy, fd, s.hwpt(fd, dev_id, ioas, C.IOMMU_HWPT_ALLOC_PASID))


def test_alloc_data_len_without_type_einval(host: Host) -> None:
    """hw_pagetable.c:iommufd_hwpt_alloc: data type NONE with data_len != 0 -> EINVAL."""
    with iommufd_session(host) as s:
        fd, ioas, _, dev_id = s.bound_edu()
        arg = new("struct iommu_hwpt_alloc *", dev_id=dev_id, pt_id=ioas, data_len=8)
        expect_errno(errno.EINVAL, s.k.ioctl, fd, uapi.IOMMU_HWPT_ALLOC, arg)


def test_alloc_dirty_tracking_unsupported_eopnotsupp(host: Host) -> None:
    """hw_pagetable.c:iommufd_hwpt_paging_alloc: DIRTY_TRACKING without the cap -> EOPNOTSUPP."""
    with iommufd_session(host) as s:
        fd, ioas, _, dev_id = s.bound_edu()
        if hw_capabilities(s, fd, dev_id) & C.IOMMU_HW_CAP_DIRTY_TRACKING:
            pytest.skip(f"{host.profile}: this IOMMU does track dirty pages")
        expect_errno(errno.EOPNOTSUPP, s.hwpt, fd, dev_id, ioas, DIRTY)


def test_attach_manual_hwpt_keeps_id_and_pins_it(host: Host) -> None:
    """device.c:iommufd_device_change_pt: attaching a HWPT uses it as is; destroy -> EBUSY."""
    with iommufd_session(host) as s:
        fd, ioas, cdev, dev_id = s.bound_edu()
        hwpt = s.hwpt(fd, dev_id, ioas)
        assert s.attach(cdev, hwpt) == hwpt
        expect_errno(errno.EBUSY, s.destroy, fd, hwpt)
        s.detach(cdev)
        expect_ok(s.destroy, fd, hwpt)


def test_attach_ioas_does_not_pick_manual_hwpt(host: Host) -> None:
    """device.c:iommufd_device_auto_get_domain: only auto HWPTs are reused for an IOAS."""
    with iommufd_session(host) as s:
        fd, ioas, cdev, dev_id = s.bound_edu()
        manual = s.hwpt(fd, dev_id, ioas)
        assert s.attach(cdev, ioas) != manual


def test_set_dirty_tracking_without_support_eopnotsupp(host: Host) -> None:
    """io_pagetable.c:iopt_set_dirty_tracking: a domain without dirty ops -> EOPNOTSUPP."""
    with iommufd_session(host) as s:
        fd, ioas, _, dev_id = s.bound_edu()
        arg = new("struct iommu_hwpt_set_dirty_tracking *", flags=1,
                  hwpt_id=s.hwpt(fd, dev_id, ioas))
        expect_errno(errno.EOPNOTSUPP, s.k.ioctl, fd, uapi.IOMMU_HWPT_SET_DIRTY_TRACKING, arg)


def test_set_dirty_tracking_unknown_flag_eopnotsupp(host: Host) -> None:
    """hw_pagetable.c:iommufd_hwpt_set_dirty_tracking: flags beyond ENABLE -> EOPNOTSUPP."""
    with iommufd_session(host) as s:
        fd, ioas, _, dev_id = s.bound_edu()
        arg = new("struct iommu_hwpt_set_dirty_tracking *", flags=2,
                  hwpt_id=s.hwpt(fd, dev_id, ioas))
        expect_errno(errno.EOPNOTSUPP, s.k.ioctl, fd, uapi.IOMMU_HWPT_SET_DIRTY_TRACKING, arg)


def test_set_dirty_tracking_reserved_ignored(host: Host) -> None:
    """hw_pagetable.c:iommufd_hwpt_set_dirty_tracking checks flags, never __reserved: with it
    set, an unknown id is ENOENT and a HWPT without dirty ops EOPNOTSUPP as without it."""
    with iommufd_session(host) as s:
        fd, ioas, _, dev_id = s.bound_edu()
        for hwpt_id, want in ((1000, errno.ENOENT), (ioas, errno.ENOENT),
                              (s.hwpt(fd, dev_id, ioas), errno.EOPNOTSUPP)):
            arg = new("struct iommu_hwpt_set_dirty_tracking *", flags=1, hwpt_id=hwpt_id,
                      __reserved=1)
            expect_errno(want, s.k.ioctl, fd, uapi.IOMMU_HWPT_SET_DIRTY_TRACKING, arg)


def _invalidate_errno(want: int, s: Any, fd: int, hwpt_id: int, **fields: int) -> None:
    """IOMMU_HWPT_INVALIDATE fails with ``want`` and still copies the struct back, entry_num 0."""
    arg = new("struct iommu_hwpt_invalidate *", hwpt_id=hwpt_id, **fields)
    expect_errno(want, s.k.ioctl, fd, uapi.IOMMU_HWPT_INVALIDATE, arg)
    assert arg.entry_num == 0


def _entries(s: Any, n: int = 2) -> dict[str, int]:
    """Fields of a VT-d stage-1 invalidation array of ``n`` zeroed entries in a buffer."""
    size = ffi.sizeof("struct iommu_hwpt_vtd_s1_invalidate")
    return {"data_uptr": s.buffer(), "entry_len": size, "entry_num": n,
            "data_type": C.IOMMU_HWPT_INVALIDATE_DATA_VTD_S1}


def test_invalidate_paging_hwpt_refused(host: Host) -> None:
    """hw_pagetable.c:iommufd_hwpt_invalidate: only nested HWPTs (and vIOMMUs) take it:
    ENOENT on 6.12 (looked up as HWPT_NESTED), EINVAL from 6.14 (looked up as any object, then
    the wrong type); entry_num is written back 0 either way."""
    with iommufd_session(host) as s:
        fd, ioas, _, dev_id = s.bound_edu()
        want = errno.EINVAL if host.linux_at_least(6, 14) else errno.ENOENT
        _invalidate_errno(want, s, fd, s.hwpt(fd, dev_id, ioas), **_entries(s))
        _invalidate_errno(want, s, fd, ioas, **_entries(s))


def test_invalidate_unknown_id_enoent_writes_back(host: Host) -> None:
    """hw_pagetable.c:iommufd_hwpt_invalidate: no such object -> ENOENT, and the struct is copied
    back with entry_num 0 (the count of entries handled) even though the call failed."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        _invalidate_errno(errno.ENOENT, s, fd, 1000, **_entries(s, 3))
        _invalidate_errno(errno.ENOENT, s, fd, 0)


def test_invalidate_reserved_before_lookup(host: Host) -> None:
    """hw_pagetable.c:iommufd_hwpt_invalidate: __reserved -> EOPNOTSUPP before the id lookup,
    entry_num written back 0."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        _invalidate_errno(errno.EOPNOTSUPP, s, fd, 1000, __reserved=1, **_entries(s, 3))


def test_invalidate_entries_without_buffer_einval(host: Host) -> None:
    """hw_pagetable.c:iommufd_hwpt_invalidate: entry_num without data_uptr or entry_len ->
    EINVAL before the id lookup (an unknown id does not make it ENOENT)."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        _invalidate_errno(errno.EINVAL, s, fd, 1000, **{**_entries(s), "data_uptr": 0})
        _invalidate_errno(errno.EINVAL, s, fd, 1000, **{**_entries(s), "entry_len": 0})


def test_invalidate_entry_bounds_before_lookup(host: Host) -> None:
    """hw_pagetable.c:iommufd_hwpt_invalidate bounds the array before the id lookup: entry_len
    above PAGE_SIZE or entry_num above IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX (2^19) -> EINVAL
    (7.3, and 6.12.y by a stable backport: the lane's 6.12.117 answers so)."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        _invalidate_errno(errno.EINVAL, s, fd, 1000, **{**_entries(s), "entry_len": PAGE + 8})
        _invalidate_errno(errno.EINVAL, s, fd, 1000, **{**_entries(s), "entry_num": (1 << 19) + 1})
        _invalidate_errno(errno.ENOENT, s, fd, 1000, **{**_entries(s), "entry_num": 1 << 19})


def test_fault_queue_alloc_gives_fd_and_id(host: Host) -> None:
    """fault.c:iommufd_fault_alloc: a FAULT object id and a new fd."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        arg = new("struct iommu_fault_alloc *")
        expect_ok(s.k.ioctl, fd, uapi.IOMMU_FAULT_QUEUE_ALLOC, arg)
        s.track(int(arg.out_fault_fd))
        assert arg.out_fault_id >= 1 and arg.out_fault_fd != fd


def test_fault_fd_pread_pwrite_espipe(host: Host) -> None:
    """fault.c:iommufd_fault_alloc makes the fd with anon_inode_getfile: no FMODE_PREAD/PWRITE,
    so fs/read_write.c:ksys_pread64/pwrite64 answer ESPIPE before the queue's own read/write
    (offset 0 and a whole record would suit those); a negative offset is EINVAL first."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        arg = new("struct iommu_fault_alloc *")
        expect_ok(s.k.ioctl, fd, uapi.IOMMU_FAULT_QUEUE_ALLOC, arg)
        qfd = s.track(int(arg.out_fault_fd))
        expect_errno(errno.ESPIPE, s.k.pread, qfd, ffi.sizeof("struct iommu_hwpt_pgfault"), 0)
        expect_errno(errno.ESPIPE, s.k.pwrite, qfd, bytes(8), 0)
        expect_errno(errno.ESPIPE, s.k.pread, qfd, 1, 0x10000000002)
        expect_errno(errno.EINVAL, s.k.pread, qfd, 8, -1)


def test_fault_queue_alloc_flags_eopnotsupp(host: Host) -> None:
    """fault.c:iommufd_fault_alloc: flags != 0 -> EOPNOTSUPP."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        arg = new("struct iommu_fault_alloc *", flags=1)
        expect_errno(errno.EOPNOTSUPP, s.k.ioctl, fd, uapi.IOMMU_FAULT_QUEUE_ALLOC, arg)


# -- fake only: what QEMU's intel-iommu cannot show -------------------------------------------


def _dirty_hwpt(host: Host, s: object) -> tuple[int, int, int]:
    """A dirty-tracking HWPT with the edu attached and one 4-page mapping; (fd, hwpt, iova)."""
    host.kernel.iommu.model.dirty_tracking = True  # type: ignore[attr-defined]
    fd, ioas, cdev, dev_id = s.bound_edu()  # type: ignore[attr-defined]
    hwpt = s.hwpt(fd, dev_id, ioas, DIRTY)  # type: ignore[attr-defined]
    s.attach(cdev, hwpt)  # type: ignore[attr-defined]
    iova = s.map(fd, ioas, s.buffer(4), 4 * PAGE, 0x100000)  # type: ignore[attr-defined]
    arg = new("struct iommu_hwpt_set_dirty_tracking *", flags=1, hwpt_id=hwpt)
    host.kernel.ioctl(fd, uapi.IOMMU_HWPT_SET_DIRTY_TRACKING, arg)
    return fd, hwpt, iova


def _device_write(host: Host, iova: int, data: bytes) -> bool:
    """The fake's "device writes" hook: a DMA write by the edu through its IOMMU."""
    k: Any = host.kernel
    return bool(k.dma_write(k.bus.devices[host.edu], iova, data))


def _bitmap(host: Host, fd: int, hwpt: int, iova: int, flags: int = 0) -> int:
    bits = ffi.new("uint64_t[1]")
    arg = new("struct iommu_hwpt_get_dirty_bitmap *", hwpt_id=hwpt, flags=flags, iova=iova,
              length=4 * PAGE, page_size=PAGE, data=addr(bits))
    host.kernel.ioctl(fd, uapi.IOMMU_HWPT_GET_DIRTY_BITMAP, arg)
    return int(bits[0])


@pytest.mark.fake_only(NO_DIRTY_ON_VIOMMU)
def test_device_writes_show_in_dirty_bitmap_then_clear(host: Host) -> None:
    """iommufd.c:iommufd_dirty_tracking.get_dirty_bitmap: written pages read once, then clear."""
    with iommufd_session(host) as s:
        fd, hwpt, iova = _dirty_hwpt(host, s)
        assert _device_write(host, iova + 2 * PAGE + 8, b"x" * 16)
        assert _bitmap(host, fd, hwpt, iova) == 0b100
        assert _bitmap(host, fd, hwpt, iova) == 0


@pytest.mark.fake_only(NO_DIRTY_ON_VIOMMU)
def test_dirty_bitmap_no_clear_keeps_bits(host: Host) -> None:
    """iommufd.c:iommufd_dirty_tracking.get_dirty_bitmap_no_clear: NO_CLEAR leaves bits set."""
    with iommufd_session(host) as s:
        fd, hwpt, iova = _dirty_hwpt(host, s)
        _device_write(host, iova, b"y")
        no_clear = C.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR
        assert _bitmap(host, fd, hwpt, iova, no_clear) == _bitmap(host, fd, hwpt, iova) == 1


@pytest.mark.fake_only(NO_DIRTY_ON_VIOMMU)
def test_dirty_bitmap_unaligned_einval(host: Host) -> None:
    """hw_pagetable.c:iommufd_check_iova_range: iova not a multiple of page_size -> EINVAL."""
    with iommufd_session(host) as s:
        fd, hwpt, iova = _dirty_hwpt(host, s)
        bits = ffi.new("uint64_t[1]")
        arg = new("struct iommu_hwpt_get_dirty_bitmap *", hwpt_id=hwpt, iova=iova + PAGE,
                  length=2 * PAGE, page_size=2 * PAGE, data=addr(bits))
        expect_errno(errno.EINVAL, host.kernel.ioctl, fd, uapi.IOMMU_HWPT_GET_DIRTY_BITMAP, arg)


@pytest.mark.fake_only("QEMU's intel-iommu has no page requests (PRI); the fake feeds faults")
def test_fault_queue_reports_unmapped_device_access(host: Host) -> None:
    """fault.c:iommufd_fault_fops_read: a HWPT's I/O page fault is read as iommu_hwpt_pgfault."""
    with iommufd_session(host) as s:
        fd, ioas, cdev, dev_id = s.bound_edu()
        alloc = new("struct iommu_fault_alloc *")
        s.k.ioctl(fd, uapi.IOMMU_FAULT_QUEUE_ALLOC, alloc)
        qfd = s.track(int(alloc.out_fault_fd))
        arg = new("struct iommu_hwpt_alloc *", flags=C.IOMMU_HWPT_FAULT_ID_VALID, dev_id=dev_id,
                  pt_id=ioas, fault_id=alloc.out_fault_id)
        s.k.ioctl(fd, uapi.IOMMU_HWPT_ALLOC, arg)
        s.attach(cdev, int(arg.out_hwpt_id))
        assert not _device_write(host, 0x300000, b"z")
        raw = s.k.read(qfd, ffi.sizeof("struct iommu_hwpt_pgfault"))
        rec = ffi.from_buffer("struct iommu_hwpt_pgfault *", raw)
        assert (rec.dev_id, rec.addr, rec.perm) == (dev_id, 0x300000,
                                                   C.IOMMU_PGFAULT_PERM_WRITE)
        s.k.write(qfd, bytes(ffi.buffer(new("struct iommu_hwpt_page_response *",
                                            cookie=rec.cookie))))
