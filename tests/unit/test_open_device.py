"""pyvfio.open_device: one handle that owns its DMA space, BARs and interrupts, in every mode."""

from __future__ import annotations

import errno

import pytest

import pyvfio
from pyvfio.fake import FakeKernel, nonviable_host, standard_host
from tests.helpers import expect_errno


@pytest.fixture
def kernel(fake_kernel: FakeKernel) -> FakeKernel:
    return fake_kernel  # the pytest plugin's (pyvfio.testing): iommufd on, leak check at teardown


@pytest.mark.parametrize("mode", pyvfio.IOMMU_MODES)
def test_each_mode_gives_a_device_with_its_dma_space(kernel: FakeKernel, mode: str) -> None:
    with pyvfio.open_device(kernel.labels["edu"], mode=mode, kernel=kernel) as dev:
        assert dev.iommu_mode == mode and mode.startswith(dev.mode.replace("legacy", "type1"))
        assert f"{mode} requested" in (dev.mode_reason or "")
        mapping = dev.dma.allocate(8192)
        assert dev.dma.iova(mapping.vaddr + 5) == mapping.iova + 5
        assert dev.bar(0) is dev.bar(0) and dev.bar(0).read(0, 4) & 0xFF == 0xED
    assert mapping.closed


def test_auto_prefers_iommufd_and_says_why(kernel: FakeKernel) -> None:
    with pyvfio.open_device(kernel.labels["edu"], kernel=kernel) as dev:
        assert (dev.mode, dev.iommu_mode) == ("iommufd", "iommufd")
        assert "cdev are available" in (dev.mode_reason or "")


def test_auto_without_iommufd_falls_back_to_legacy_and_says_why() -> None:
    k = standard_host()
    with pyvfio.open_device(k.labels["edu"], kernel=k) as dev:
        assert dev.mode == "legacy" and dev.iommu_mode == "type1v2"
        assert "/dev/iommu does not exist" in (dev.mode_reason or "")
    with pytest.raises(pyvfio.ModeUnavailableError, match="iommufd mode unavailable"):
        pyvfio.open_device(k.labels["edu"], mode="iommufd", kernel=k)
    with pytest.raises(pyvfio.ModeUnavailableError, match="compat"):
        pyvfio.open_device(k.labels["edu"], mode="compat", kernel=k)
    k.assert_clean()


@pytest.mark.parametrize("bdf", ["", "0000:00:01", "00:01.0 ", "0000:00:20.0", "x:00:01.0"])
def test_a_malformed_bdf_is_refused_before_any_syscall(kernel: FakeKernel, bdf: str) -> None:
    with pytest.raises(ValueError, match="bdf must be a PCI address"):
        pyvfio.open_device(bdf, kernel=kernel)
    assert not kernel.calls


def test_bad_arguments_name_the_parameter(kernel: FakeKernel) -> None:
    with pytest.raises(TypeError, match="bdf must be a str"):
        pyvfio.open_device(1, kernel=kernel)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode must be one of"):
        pyvfio.open_device(kernel.labels["edu"], mode="vfio", kernel=kernel)


def test_a_short_bdf_means_domain_0000(kernel: FakeKernel) -> None:
    with pyvfio.open_device("00:01.0", mode="legacy", kernel=kernel) as dev:
        assert dev.name == kernel.labels["edu"]


def test_a_missing_device_leaves_nothing_open(kernel: FakeKernel) -> None:
    for mode in ("legacy", "iommufd", "compat"):
        with pytest.raises(OSError) as info:
            pyvfio.open_device("0000:09:00.0", mode=mode, kernel=kernel)
        assert info.value.errno == errno.ENOENT or isinstance(info.value, pyvfio.PyvfioError)


def test_a_nonviable_group_names_its_blocker() -> None:
    k = nonviable_host()
    with pytest.raises(pyvfio.GroupNotViableError) as info:
        pyvfio.open_device(k.labels["nonviable_edu"], mode="legacy", kernel=k)
    assert info.value.blockers == [(k.labels["nonviable_nic"], "e1000e")]
    k.assert_clean()


def test_interrupts_come_on_eventfds_the_device_owns(kernel: FakeKernel) -> None:
    with pyvfio.open_device(kernel.labels["edu"], kernel=kernel) as dev:
        dev.enable_bus_master()
        (irq,) = dev.enable_interrupts("msi")
        dev.bar(0).write(0x60, 4, 0x10)  # edu: raise interrupt bit 4
        assert irq.wait(1.0) == 1
        with pytest.raises(ValueError, match="index must be one of"):
            dev.enable_interrupts("nmi")
    assert irq.closed  # closed with the device


def test_close_twice_is_a_no_op(kernel: FakeKernel) -> None:
    dev = pyvfio.open_device(kernel.labels["edu"], mode="legacy", kernel=kernel)
    dev.dma.allocate(4096)
    dev.close()
    dev.close()
    assert dev.closed


@pytest.mark.parametrize(("mode", "ioctl"), [
    ("legacy", "VFIO_IOMMU_UNMAP_DMA"),
    ("compat", "VFIO_IOMMU_UNMAP_DMA"),
    ("iommufd", "IOMMU_IOAS_UNMAP"),
    ("legacy", "VFIO_DEVICE_SET_IRQS"),
    ("iommufd", "VFIO_DEVICE_SET_IRQS"),
])
def test_a_failing_close_step_releases_everything_and_names_it(
        kernel: FakeKernel, mode: str, ioctl: str) -> None:
    dev = pyvfio.open_device(kernel.labels["edu"], mode=mode, kernel=kernel)
    dev.enable_bus_master()
    irq = dev.enable_interrupts("msi")[0]
    bar = dev.bar(0)
    buf = pyvfio.DMABuffer.anonymous(4096)
    mapping = dev.dma.map(buf)
    kernel.inject(ioctl, errno.EIO)
    with pytest.raises(pyvfio.CloseError) as info:
        dev.close()
    assert [exc.errno for _, exc in info.value.failures] == [errno.EIO]
    assert ioctl in str(info.value) and info.value.errno == errno.EIO
    assert dev.closed and irq.closed and mapping.closed
    with pytest.raises(ValueError):
        bar.read(0, 4)
    dev.close()  # no-op, no BufferError
    buf.close()  # the mapping let go of it


def test_unmap_refused_keeps_the_mapping_indexed(kernel: FakeKernel) -> None:
    with pyvfio.open_device(kernel.labels["edu"], mode="legacy", kernel=kernel) as dev:
        mapping = dev.dma.allocate(4096)
        kernel.inject("VFIO_IOMMU_UNMAP_DMA", errno.EIO)
        expect_errno(errno.EIO, mapping.close)
        assert not mapping.closed and dev.dma.lookup(mapping.iova) is mapping
        mapping.close()
        assert mapping.closed and len(dev.dma) == 0


def test_group_conflict_is_still_a_permission_error() -> None:
    err = pyvfio.GroupConflictError(errno.EPERM, "0000:02:01.0", 6, ["0000:02:02.0"],
                                    "VFIO_DEVICE_BIND_IOMMUFD", "owned elsewhere", "hint")
    assert isinstance(err, PermissionError) and err.errno == errno.EPERM
    busy = pyvfio.GroupConflictError(errno.EBUSY, "/dev/vfio/6", 6, [], "open", "open", "h")
    assert not isinstance(busy, PermissionError) and busy.errno == errno.EBUSY
