"""The fake's IOMMU_TEST_CMD: present by default (CONFIG_IOMMUFD_TEST), absent on request."""

from __future__ import annotations

import errno

from pyvfio import uapi
from pyvfio._ffi import C, new
from pyvfio.fake import standard_host
from pyvfio.iommufd import IOMMUFD
from tests.helpers import expect_errno

TEST_CMD = uapi.TEST_IOCTLS["IOMMU_TEST_CMD"]


def test_test_cmd_is_not_uapi() -> None:
    assert "IOMMU_TEST_CMD" not in uapi.IOCTLS and len(uapi.IOCTLS) == 56
    assert int(TEST_CMD) == (ord(";") << 8) | 0xA0


def test_kernel_without_iommufd_test_answers_enotty() -> None:
    k = standard_host(iommufd=True)
    k.iommu.model.iommufd_test = False
    with IOMMUFD(k) as fd:
        cmd = new("struct iommu_test_cmd *", op=C.IOMMU_TEST_OP_MOCK_DOMAIN, id=fd.ioas().id)
        expect_errno(errno.ENOTTY, k.ioctl, fd.fileno(), TEST_CMD, cmd)
    k.assert_clean()


def test_closing_the_iommufd_destroys_mock_devices() -> None:
    k = standard_host(iommufd=True)
    with IOMMUFD(k) as fd:
        cmd = new("struct iommu_test_cmd *", op=C.IOMMU_TEST_OP_MOCK_DOMAIN, id=fd.ioas().id)
        k.ioctl(fd.fileno(), TEST_CMD, cmd)
        assert cmd.mock_domain.out_idev_id
    k.assert_clean()
