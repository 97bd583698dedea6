"""PASID attach/replace/detach and IOMMU_HWPT_ALLOC_PASID, on the mock device and on a VFIO cdev.

Specification: Linux 7.3 tools/testing/selftests/iommu/iommufd.c ``iommufd_device_pasid``,
drivers/iommu/iommufd/device.c (iommufd_hwpt_pasid_compat, iommufd_hw_pagetable_attach),
drivers/vfio/device_cdev.c (VFIO_DEVICE_ATTACH_PASID / DETACH_PASID) and vfio/iommufd.c.
PASID on the cdev came with 6.15: on 6.12 the flag is EINVAL.
The mock device's tests and the cdev tests run alike on the lane's iommufd-7.3 (intel-iommu in
legacy mode), sm-7.3 (scalable mode: x-scalable-mode=on,x-pasid-mode=on) and mock-7.3.
"""

from __future__ import annotations

import errno

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from pyvfio.hwpt import HWPT, FaultQueue
from pyvfio.iommufd import IOMMUFD
from tests.conformance.iommufd_helpers import addr, iommufd_session
from tests.conformance.mock_helpers import (
    MockDevice,
    mock_domain,
    mock_iommufd,
    require_linux,
    since,
    test_cmd,
)
from tests.conformance.test_iopf import trigger_iopf
from tests.conformance.test_viommu import nested
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

PASID_DEV = C.MOCK_FLAGS_DEVICE_PASID


def attach(fd: IOMMUFD, dev: MockDevice, pasid: int, pt_id: int, *, replace: bool = False) -> int:
    op = C.IOMMU_TEST_OP_PASID_REPLACE if replace else C.IOMMU_TEST_OP_PASID_ATTACH
    cmd = test_cmd(fd, op, dev.stdev, pasid_attach={"pasid": pasid, "pt_id": pt_id})
    return int(cmd.pasid_attach.pt_id)


def detach(fd: IOMMUFD, dev: MockDevice, pasid: int) -> None:
    test_cmd(fd, C.IOMMU_TEST_OP_PASID_DETACH, dev.stdev, pasid_detach={"pasid": pasid})


def check(fd: IOMMUFD, dev: MockDevice, pasid: int, hwpt_id: int) -> None:
    """PASID_CHECK_HWPT: EINVAL unless ``pasid`` is on ``hwpt_id`` (0: detached)."""
    test_cmd(fd, C.IOMMU_TEST_OP_PASID_CHECK_HWPT, dev.stdev,
             pasid_check={"pasid": pasid, "hwpt_id": hwpt_id})


def test_pasid_compat_rules(host: Host) -> None:
    """pasid_attach: a PASID takes only a PASID-flagged HWPT, and only while the RID's HWPT is
    one too; then the RID cannot move to a plain HWPT; detaching a free PASID is fine."""
    with mock_iommufd(host, PASID_DEV) as (fd, ioas, dev):
        since(host, "6.15", detach, fd, dev, 100)
        parent = HWPT.alloc(fd, dev.idev, ioas, nest_parent=True)
        s2 = HWPT.alloc(fd, dev.idev, ioas, pasid=True)
        n0 = nested(fd, dev, parent, pasid=True)
        dev.replace(fd, parent.id)
        expect_errno(errno.EINVAL, attach, fd, dev, 100, s2.id)
        dev.replace(fd, s2.id)
        assert attach(fd, dev, 100, n0.id) == n0.id
        expect_errno(errno.EINVAL, dev.replace, fd, parent.id)
        expect_errno(errno.EBUSY, attach, fd, dev, 100, n0.id)
        expect_errno(errno.EBUSY, n0.destroy)
        detach(fd, dev, 100)
        check(fd, dev, 100, 0)
        expect_errno(errno.EINVAL, attach, fd, dev, 100, parent.id)
        expect_errno(errno.EINVAL, attach, fd, dev, 100, ioas.id)
        check(fd, dev, 100, 0)
        assert attach(fd, dev, 100, s2.id) == s2.id
        check(fd, dev, 100, s2.id)
        expect_errno(errno.EINVAL, check, fd, dev, 100, n0.id)
        detach(fd, dev, 100)
        dev.replace(fd, ioas.id)
        for hwpt in (n0, s2, parent):
            hwpt.destroy()


def test_pasid_on_device_without_pasid(host: Host) -> None:
    """A mock device without PASID support refuses any PASID (EINVAL), flagged HWPT or not;
    a PASID-flagged HWPT still serves its RID."""
    with mock_iommufd(host, PASID_DEV) as (fd, ioas, dev):
        since(host, "6.15", detach, fd, dev, 100)
        plain = mock_domain(fd, ioas.id)
        s2 = HWPT.alloc(fd, dev.idev, ioas, pasid=True)
        expect_errno(errno.EINVAL, attach, fd, plain, 100, s2.id)
        assert plain.replace(fd, s2.id) == s2.id
        plain.replace(fd, ioas.id)
        s2.destroy()


def test_pasid_replace(host: Host) -> None:
    """Replacing a free PASID -> EINVAL; replacing with an IOAS -> EINVAL and the old HWPT
    stays; the mock fails the second change of PASID 1024 with ENOMEM and keeps the old one."""
    with mock_iommufd(host, PASID_DEV) as (fd, ioas, dev):
        since(host, "6.15", detach, fd, dev, 200)
        parent = HWPT.alloc(fd, dev.idev, ioas, nest_parent=True)
        s2 = HWPT.alloc(fd, dev.idev, ioas, pasid=True)
        n0, n1 = nested(fd, dev, parent, pasid=True), nested(fd, dev, parent, pasid=True)
        dev.replace(fd, s2.id)
        expect_errno(errno.EINVAL, attach, fd, dev, 200, s2.id, replace=True)
        attach(fd, dev, 200, s2.id)
        expect_errno(errno.EINVAL, attach, fd, dev, 200, ioas.id, replace=True)
        check(fd, dev, 200, s2.id)
        assert attach(fd, dev, 200, n0.id, replace=True) == n0.id
        assert attach(fd, dev, 200, n1.id, replace=True) == n1.id
        check(fd, dev, 200, n1.id)
        detach(fd, dev, 200)
        attach(fd, dev, C.IOMMU_TEST_PASID_RESERVED, s2.id)
        expect_errno(errno.ENOMEM, attach, fd, dev, C.IOMMU_TEST_PASID_RESERVED, n0.id,
                     replace=True)
        check(fd, dev, C.IOMMU_TEST_PASID_RESERVED, s2.id)
        detach(fd, dev, C.IOMMU_TEST_PASID_RESERVED)
        dev.replace(fd, ioas.id)
        for hwpt in (n0, n1, s2, parent):
            hwpt.destroy()


def test_pasid_iopf(host: Host) -> None:
    """A page request tagged with an attached PASID reaches that PASID's HWPT's fault queue."""
    with mock_iommufd(host, PASID_DEV) as (fd, ioas, dev):
        since(host, "6.15", detach, fd, dev, 2048)
        parent = HWPT.alloc(fd, dev.idev, ioas, nest_parent=True)
        s2 = HWPT.alloc(fd, dev.idev, ioas, pasid=True)
        queue = FaultQueue(fd)
        iopf = nested(fd, dev, parent, pasid=True, fault=queue)
        dev.replace(fd, s2.id)
        attach(fd, dev, 2048, iopf.id)
        trigger_iopf(fd, dev, pasid=2048)
        [fault] = queue.read()
        assert (fault.pasid, fault.dev_id) == (2048, dev.idev)
        assert fault.flags & C.IOMMU_PGFAULT_FLAGS_PASID_VALID
        queue.respond(fault.cookie)
        assert attach(fd, dev, 2048, s2.id, replace=True) == s2.id
        detach(fd, dev, 2048)
        dev.replace(fd, ioas.id)
        for hwpt in (iopf, s2, parent):
            hwpt.destroy()
        queue.close()


def _cdev_attach(s: object, cdev: int, pasid: int, pt_id: int, argsz: int = 16) -> int:
    arg = new("struct vfio_device_attach_iommufd_pt *", argsz=argsz,
              flags=C.VFIO_DEVICE_ATTACH_PASID, pt_id=pt_id, pasid=pasid)
    s.k.ioctl(cdev, uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, arg)  # type: ignore[attr-defined]
    return int(arg.pt_id)


def test_cdev_pasid_flag_checks(host: Host) -> None:
    """device_cdev.c:vfio_df_ioctl_attach_pt/detach_pt: unknown flags -> EINVAL; with the PASID
    flag the pasid field must be inside argsz (EINVAL); a free PASID detaches quietly."""
    require_linux(host, "6.15")
    with iommufd_session(host) as s:
        _, ioas, cdev, _ = s.bound_edu()
        bad = new("struct vfio_device_attach_iommufd_pt *", argsz=16, flags=2, pt_id=ioas)
        expect_errno(errno.EINVAL, s.k.ioctl, cdev, uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, bad)
        expect_errno(errno.EINVAL, _cdev_attach, s, cdev, 1, ioas, argsz=12)
        det = new("struct vfio_device_detach_iommufd_pt *", argsz=12,
                  flags=C.VFIO_DEVICE_DETACH_PASID, pasid=5)
        expect_ok(s.k.ioctl, cdev, uapi.VFIO_DEVICE_DETACH_IOMMUFD_PT, det)
        det.argsz = 8
        expect_errno(errno.EINVAL, s.k.ioctl, cdev, uapi.VFIO_DEVICE_DETACH_IOMMUFD_PT, det)


def _cdev_detach(s: object, cdev: int, pasid: int) -> None:
    arg = new("struct vfio_device_detach_iommufd_pt *", argsz=12,
              flags=C.VFIO_DEVICE_DETACH_PASID, pasid=pasid)
    s.k.ioctl(cdev, uapi.VFIO_DEVICE_DETACH_IOMMUFD_PT, arg)  # type: ignore[attr-defined]


def test_cdev_pasid_on_edu(host: Host) -> None:
    """edu has no PASID capability (GET_HW_INFO max_pasid_log2 0), and 7.3 still attaches its
    PASIDs: iommu.c:iommu_attach_device_pasid skips the PASID range check for a device without
    PASID support (max_pasids 0) and intel-iommu's set_dev_pasid takes it, in legacy and in
    scalable mode alike (the lane's iommufd-7.3 and sm-7.3 answer the same).  The iommufd
    rules still hold (device.c:iommufd_hwpt_pasid_compat): only an IOMMU_HWPT_ALLOC_PASID HWPT,
    never the IOAS's automatic domain, and only while the RID's HWPT is PASID-capable too; the
    RID cannot leave for a plain HWPT while a PASID is attached; a HWPT under a PASID is busy;
    vfio attaching an attached PASID replaces it (vfio/iommufd.c)."""
    require_linux(host, "6.15")
    with iommufd_session(host) as s:
        fd, ioas, cdev, dev_id = s.bound_edu()
        info = new("struct iommu_hw_info *", dev_id=dev_id)
        s.k.ioctl(fd, uapi.IOMMU_GET_HW_INFO, info)
        assert info.out_max_pasid_log2 == 0
        h1 = s.hwpt(fd, dev_id, ioas, C.IOMMU_HWPT_ALLOC_PASID)
        h2 = s.hwpt(fd, dev_id, ioas, C.IOMMU_HWPT_ALLOC_PASID)
        plain = s.hwpt(fd, dev_id, ioas)
        expect_errno(errno.EINVAL, _cdev_attach, s, cdev, 3, ioas)
        expect_errno(errno.EINVAL, _cdev_attach, s, cdev, 3, plain)
        assert _cdev_attach(s, cdev, 3, h1) == h1  # no RID attachment yet: nothing to clash
        _cdev_detach(s, cdev, 3)
        s.attach(cdev, ioas)
        expect_errno(errno.EINVAL, _cdev_attach, s, cdev, 3, h1)  # the RID's auto domain
        assert s.attach(cdev, h1) == h1
        assert _cdev_attach(s, cdev, 3, h1) == h1
        assert _cdev_attach(s, cdev, 3, h2) == h2  # replaced
        expect_errno(errno.EINVAL, _cdev_attach, s, cdev, 3, plain)
        expect_errno(errno.EINVAL, _cdev_attach, s, cdev, 3, ioas)
        assert _cdev_attach(s, cdev, (1 << 20) - 1, h1) == h1
        assert _cdev_attach(s, cdev, 1 << 20, h1) == h1  # no width to check against
        expect_errno(errno.EINVAL, s.attach, cdev, plain)
        expect_errno(errno.EBUSY, s.destroy, fd, h2)
        for pasid in (3, (1 << 20) - 1, 1 << 20, 7):  # 7 was never attached: no error
            _cdev_detach(s, cdev, pasid)
        assert s.attach(cdev, plain) == plain
        s.detach(cdev)
        for hwpt in (h1, h2, plain):
            s.destroy(fd, hwpt)


def test_cdev_pasid_zero_is_the_rid(host: Host) -> None:
    """vfio/iommufd.c:vfio_iommufd_physical_pasid_attach_ioas: PASID 0 is IOMMU_NO_PASID.  It is
    not in vdev->pasids at first, so it is allocated there and attached with
    iommufd_device_attach: the RID itself (an IOAS is fine), EBUSY while the RID is attached by a
    plain ATTACH.  Once attached that way vfio's iommufd_attached stays false: a plain ATTACH is
    iommufd_device_attach again (EBUSY), a plain DETACH does nothing, a second PASID-0 ATTACH
    replaces, and only a PASID-0 DETACH (or close) lets the RID go."""
    require_linux(host, "6.15")
    with iommufd_session(host) as s:
        fd, ioas, cdev, _ = s.bound_edu()
        auto = _cdev_attach(s, cdev, 0, ioas)
        expect_errno(errno.EBUSY, s.attach, cdev, ioas)
        expect_errno(errno.ENOENT, s.attach, cdev, 0xDEAD)  # the pt_id lookup comes first
        s.detach(cdev)  # not vfio's attachment: nothing happens
        expect_errno(errno.EBUSY, s.attach, cdev, ioas)
        other = s.ioas(fd)
        auto2 = _cdev_attach(s, cdev, 0, other)  # replaced
        assert auto2 != auto
        _cdev_detach(s, cdev, 0)
        assert s.attach(cdev, ioas) > 0  # the RID is free again
        expect_errno(errno.EBUSY, _cdev_attach, s, cdev, 0, ioas)
        expect_errno(errno.EBUSY, _cdev_attach, s, cdev, 0, other)
        _cdev_detach(s, cdev, 0)  # 0 is not in vdev->pasids: the plain attachment stays
        expect_errno(errno.EBUSY, _cdev_attach, s, cdev, 0, ioas)
        s.detach(cdev)
        assert _cdev_attach(s, cdev, 0, ioas) > 0


def test_cdev_pasid_above_int_max_enospc(host: Host) -> None:
    """ida_alloc_range(&vdev->pasids, pasid, pasid) refuses an id above INT_MAX with ENOSPC,
    before the pt_id is looked up; detaching such a PASID finds nothing (ida_exists) and is
    no error."""
    require_linux(host, "6.15")
    with iommufd_session(host) as s:
        _, ioas, cdev, _ = s.bound_edu()
        for pasid in (1 << 31, 0xFFFFFFFF):
            expect_errno(errno.ENOSPC, _cdev_attach, s, cdev, pasid, ioas)
            expect_errno(errno.ENOSPC, _cdev_attach, s, cdev, pasid, 0xDEAD)
            _cdev_detach(s, cdev, pasid)
        expect_errno(errno.ENOENT, _cdev_attach, s, cdev, (1 << 31) - 1, 0xDEAD)


ECAP_PASID, ECAP_SMTS = 1 << 40, 1 << 43  # VT-d ECAP_REG: PASID support, scalable mode


def test_vtd_ecap_says_scalable_mode(host: Host) -> None:
    """GET_HW_INFO's VT-d data carries the IOMMU's own CAP/ECAP registers
    (intel/iommu.c:intel_iommu_hw_info).  QEMU 7.2's intel-iommu sets ECAP.SMTS only with
    x-scalable-mode=on and ECAP.PASID only with x-pasid-mode=on: the sm-7.3 profile, whose
    ``intel_iommu=on,sm_on`` then runs the driver in scalable mode (sm_supported: intel_iommu_sm
    and ecap_smts).  Every other VT-d profile, and the fake's VT-d model, is legacy mode."""
    with iommufd_session(host) as s:
        fd, _, _, dev_id = s.bound_edu()
        data = ffi.new("struct iommu_hw_info_vtd *")
        info = new("struct iommu_hw_info *", dev_id=dev_id, data_uptr=addr(data),
                   data_len=ffi.sizeof("struct iommu_hw_info_vtd"))
        s.k.ioctl(fd, uapi.IOMMU_GET_HW_INFO, info)
        assert info.out_data_type == C.IOMMU_HW_INFO_TYPE_INTEL_VTD
        scalable = host.profile == "sm-7.3"
        assert bool(data.ecap_reg & ECAP_SMTS) == scalable, hex(data.ecap_reg)
        assert bool(data.ecap_reg & ECAP_PASID) == scalable, hex(data.ecap_reg)
