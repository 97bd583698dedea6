"""Device.mmap of a BAR with sparse mmap areas: the areas mapped, the holes by pread/pwrite.

Fake-only: the lane's kernels (6.12, 7.3) report no sparse areas for QEMU's devices -- vfio-pci
has let the MSI-X table be mapped since Linux 4.16 (VFIO_REGION_INFO_CAP_MSIX_MAPPABLE).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pyvfio import open_device
from pyvfio.fake import FakeKernel, standard_host
from pyvfio.fake.bus import VFIO_PCI
from pyvfio.fake.pci import DeviceConfig, PCIDevice
from pyvfio.registers import Register, RegisterMap
from pyvfio.sparse import SparseMMIO

BDF = "0000:00:06.0"


@pytest.fixture
def kernel() -> Iterator[FakeKernel]:
    k = standard_host()
    cfg = DeviceConfig(bars=(0x4000,), msix_vectors=4, msix_offset=0x1000,
                       sparse_mmap=((0, 0x1000), (0x2000, 0x2000)))
    k.bus.override[BDF] = VFIO_PCI
    k.add_device(PCIDevice(BDF, cfg), 9, VFIO_PCI)
    k.mark_clean()
    yield k
    k.assert_clean()


def test_sparse_bar_maps_areas_and_names_the_hole(kernel: FakeKernel) -> None:
    with open_device(BDF, mode="legacy", kernel=kernel) as dev:
        bar = dev.mmap(0)
        assert isinstance(bar, SparseMMIO) and bar.holes == ((0x1000, 0x2000),)
        bar.write(0x2008, 4, 0xCAFEF00D)
        assert bar.read(0x2008, 4) == 0xCAFEF00D
        assert bar.read(0x1000, 4) == 0xFFFFFFFF  # the MSI-X table: vfio-pci reads all-ones
        bar.write_bytes(0xFFC, b"abcdefgh")  # straddles area and hole: the hole's part dropped
        assert bar.read_bytes(0xFFC, 8) == b"abcd" + b"\xff" * 4


def test_bound_registers_on_a_sparse_bar(kernel: FakeKernel) -> None:
    regs = RegisterMap("d", [Register("a", 0x10, 4), Register("t", 0x1000, 4, "r")])
    with open_device(BDF, mode="legacy", kernel=kernel) as dev:
        bound = regs.bind(dev.mmap(0))
        bound.write("a", 7)
        assert bound.read("a") == 7 and bound.read("t") == 0xFFFFFFFF


def test_unaligned_or_outside_access_valueerror(kernel: FakeKernel) -> None:
    with open_device(BDF, mode="legacy", kernel=kernel) as dev:
        bar = dev.mmap(0)
        with pytest.raises(ValueError, match="aligned"):
            bar.read(0x2002, 4)
        with pytest.raises(ValueError, match="outside"):
            bar.read(0x4000, 4)
