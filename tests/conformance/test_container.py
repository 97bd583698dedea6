"""The legacy container, /dev/vfio/vfio (drivers/vfio/container.c, vfio_iommu_type1.c)."""

from __future__ import annotations

import errno

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from pyvfio.fake import standard_host
from tests.conformance.vfio_helpers import session, type1
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok


def test_api_version(host: Host) -> None:
    """container.c:vfio_fops_unl_ioctl: VFIO_GET_API_VERSION returns VFIO_API_VERSION (0)."""
    with session(host) as s:
        c = s.container()
        assert expect_ok(s.k.ioctl, c, uapi.VFIO_GET_API_VERSION) == C.VFIO_API_VERSION


def test_check_extension_type1_before_set_iommu(host: Host) -> None:
    """vfio_iommu_type1.c:vfio_iommu_type1_check_extension: TYPE1, TYPE1v2, UNMAP_ALL say 1."""
    if host.noiommu:
        pytest.skip("noiommu: type1 may be absent")
    with session(host) as s:
        c = s.container()
        for ext in (C.VFIO_TYPE1_IOMMU, C.VFIO_TYPE1v2_IOMMU, C.VFIO_UNMAP_ALL):
            assert s.k.ioctl(c, uapi.VFIO_CHECK_EXTENSION, ext) == 1


def test_check_extension_update_vaddr_needs_iommu(host: Host) -> None:
    """vfio_iommu_type1_check_extension: UPDATE_VADDR is 0 while iommu == NULL, then 1."""
    if host.noiommu:
        pytest.skip("noiommu: no type1")
    with session(host) as s:
        c = s.container()
        assert s.k.ioctl(c, uapi.VFIO_CHECK_EXTENSION, C.VFIO_UPDATE_VADDR) == 0
        g = s.group(host.edu_group)
        s.attach(g, c)
        s.k.ioctl(c, uapi.VFIO_SET_IOMMU, C.VFIO_TYPE1v2_IOMMU)
        assert s.k.ioctl(c, uapi.VFIO_CHECK_EXTENSION, C.VFIO_UPDATE_VADDR) == 1


def test_check_extension_unknown_is_zero(host: Host) -> None:
    """container.c:vfio_container_ioctl_check_extension: an unknown extension answers 0."""
    with session(host) as s:
        c = s.container()
        assert expect_ok(s.k.ioctl, c, uapi.VFIO_CHECK_EXTENSION, 99) == 0


def test_set_iommu_without_group_einval(host: Host) -> None:
    """container.c:vfio_ioctl_set_iommu: no group attached -> EINVAL."""
    with session(host) as s:
        c = s.container()
        expect_errno(errno.EINVAL, s.k.ioctl, c, uapi.VFIO_SET_IOMMU, type1(host))


def test_set_iommu_twice_einval(host: Host) -> None:
    """container.c:vfio_ioctl_set_iommu: an IOMMU driver already set -> EINVAL."""
    with session(host) as s:
        c, _ = s.ready(host.edu_group)
        expect_errno(errno.EINVAL, s.k.ioctl, c, uapi.VFIO_SET_IOMMU, type1(host))


def test_set_iommu_unsupported_type_enodev(host: Host) -> None:
    """container.c:vfio_ioctl_set_iommu: no driver supports the type (SPAPR on x86) -> ENODEV."""
    with session(host) as s:
        c, g = s.container(), s.group(host.edu_group)
        s.attach(g, c)
        expect_errno(errno.ENODEV, s.k.ioctl, c, uapi.VFIO_SET_IOMMU, C.VFIO_SPAPR_TCE_IOMMU)


def test_map_before_set_iommu_einval(host: Host) -> None:
    """container.c:vfio_fops_unl_ioctl: with no IOMMU driver any other ioctl is EINVAL."""
    with session(host) as s:
        c = s.container()
        m = new("struct vfio_iommu_type1_dma_map *")
        expect_errno(errno.EINVAL, s.k.ioctl, c, uapi.VFIO_IOMMU_MAP_DMA, m)


def test_unknown_ioctl_after_set_iommu_enotty(host: Host) -> None:
    """vfio_iommu_type1.c:vfio_iommu_type1_ioctl default: unknown request -> ENOTTY."""
    with session(host) as s:
        c, _ = s.ready(host.edu_group)
        expect_errno(errno.ENOTTY, s.k.ioctl, c, uapi.VFIO_IOMMU_ENABLE)


def test_last_group_leaving_resets_container(host: Host) -> None:
    """container.c:vfio_group_detach_container: the last group out releases the IOMMU driver,
    so SET_IOMMU works again after re-attaching."""
    with session(host) as s:
        c, g = s.ready(host.edu_group)
        expect_ok(s.k.ioctl, g, uapi.VFIO_GROUP_UNSET_CONTAINER)
        s.attach(g, c)
        expect_ok(s.k.ioctl, c, uapi.VFIO_SET_IOMMU, type1(host))


def test_two_groups_one_container(host: Host) -> None:
    """container.c:vfio_container_attach_group: a second group joins a container whose IOMMU is
    set and is attached to the same type1 instance at once."""
    with session(host) as s:
        c, _ = s.ready(host.edu_group)
        g2 = s.group(host.pair_group)
        expect_ok(s.attach, g2, c)
        expect_ok(s.device, g2, host.pair[0])


@pytest.mark.fake_only("the real host has no noiommu-mode switch per test")
def test_noiommu_container_refuses_type1() -> None:
    """container.c:vfio_ioctl_set_iommu skips drivers not allowed for a noiommu container:
    type1 -> ENODEV, VFIO_NOIOMMU_IOMMU -> ok; CHECK_EXTENSION(TYPE1v2) is 0."""
    k = standard_host(noiommu=True)
    c, g = k.open("/dev/vfio/vfio"), k.open("/dev/vfio/noiommu-1")
    k.ioctl(g, uapi.VFIO_GROUP_SET_CONTAINER, ffi.new("int32_t *", c))
    assert k.ioctl(c, uapi.VFIO_CHECK_EXTENSION, C.VFIO_TYPE1v2_IOMMU) == 0
    expect_errno(errno.ENODEV, k.ioctl, c, uapi.VFIO_SET_IOMMU, C.VFIO_TYPE1v2_IOMMU)
    expect_ok(k.ioctl, c, uapi.VFIO_SET_IOMMU, C.VFIO_NOIOMMU_IOMMU)
    k.close(g)
    k.close(c)
    k.assert_clean()


def test_check_extension_dma_cc_follows_the_iommu(host: Host) -> None:
    """vfio_iommu_type1_check_extension: DMA_CC_IOMMU after SET_IOMMU is 1 only if every domain
    enforces cache coherency; QEMU's intel-iommu (the lane's, and the fake host laid out like
    it) has no snoop control, so 0 (found by tests/differential)."""
    if host.noiommu:
        pytest.skip("noiommu: no type1")
    with session(host) as s:
        c, _ = s.ready(host.edu_group)
        assert s.k.ioctl(c, uapi.VFIO_CHECK_EXTENSION, C.VFIO_DMA_CC_IOMMU) == 0


def test_set_iommu_unmap_all_einval(host: Host) -> None:
    """vfio_ioctl_set_iommu: type1 claims UNMAP_ALL in CHECK_EXTENSION, so it is asked to open
    it, and vfio_iommu_type1_open refuses any other type -> EINVAL (not ENODEV)."""
    if host.noiommu:
        pytest.skip("noiommu: no type1")
    with session(host) as s:
        c, g = s.container(), s.group(host.edu_group)
        s.attach(g, c)
        expect_errno(errno.EINVAL, s.k.ioctl, c, uapi.VFIO_SET_IOMMU, C.VFIO_UNMAP_ALL)
        expect_errno(errno.ENODEV, s.k.ioctl, c, uapi.VFIO_SET_IOMMU, 99)


def test_nesting_extension_by_version(host: Host) -> None:
    """vfio_iommu_type1_check_extension: 6.12 still claims VFIO_TYPE1_NESTING_IOMMU (1; SET_IOMMU
    then fails in iommu_enable_nesting: EINVAL), 6.13 removed it (0, and SET_IOMMU finds no
    driver: ENODEV); before and after SET_IOMMU alike (found by tests/differential on 7.3)."""
    if host.noiommu:
        pytest.skip("noiommu: no type1")
    nesting = C.__VFIO_RESERVED_TYPE1_NESTING_IOMMU
    old = not host.linux_at_least(6, 13)
    with session(host) as s:
        c, g = s.container(), s.group(host.edu_group)
        assert s.k.ioctl(c, uapi.VFIO_CHECK_EXTENSION, nesting) == int(old)
        s.attach(g, c)
        expect_errno(errno.EINVAL if old else errno.ENODEV, s.k.ioctl, c, uapi.VFIO_SET_IOMMU,
                     nesting)
        expect_ok(s.k.ioctl, c, uapi.VFIO_SET_IOMMU, C.VFIO_TYPE1v2_IOMMU)
        assert s.k.ioctl(c, uapi.VFIO_CHECK_EXTENSION, nesting) == int(old)
