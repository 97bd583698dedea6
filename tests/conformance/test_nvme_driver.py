"""The NVMe driver (pyvfio.nvme) against the fake's QEMU 7.2 nvme model and, in the VM lane,
QEMU's real nvme on vfio-pci (profile ``nvme``: ``PYVFIO_VM_NVME_VFIO``; or any profile given
``--qemu-device nvme,... --bind BDF --env PYVFIO_VM_NVME_VFIO=BDF``).

Both IOMMU modes: the legacy container and iommufd (skipped where the kernel lacks it).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from pyvfio.errors import DriverError, ModeUnavailableError
from pyvfio.nvme import NvmeController, NvmeError
from tests.conftest import Host


@pytest.fixture
def nvme_bdf(host: Host) -> str:
    """A QEMU nvme bound to vfio-pci: the fake's model, or the lane's (skips without one)."""
    if host.profile == "fake":
        from pyvfio.fake.nvme import add_nvme  # noqa: PLC0415 - the fake's device model

        return str(add_nvme(host.kernel).bdf)  # type: ignore[arg-type]
    bdf = os.environ.get("PYVFIO_VM_NVME_VFIO")
    if not bdf:
        pytest.skip(f"{host.profile}: no nvme on vfio-pci (PYVFIO_VM_NVME_VFIO unset)")
    return bdf


@pytest.fixture(params=["legacy-msix", "legacy-poll", "iommufd-msix", "iommufd-poll"])
def nvme(host: Host, nvme_bdf: str, request: pytest.FixtureRequest) -> Iterator[NvmeController]:
    """The controller started in each IOMMU mode, with MSI-X or polling."""
    mode, irq = request.param.split("-")
    try:
        ctrl = NvmeController.open(nvme_bdf, mode, kernel=host.kernel, irq=irq, io_queues=2)
    except DriverError as exc:
        if isinstance(exc.cause, ModeUnavailableError):
            pytest.skip(f"{host.profile}: {exc.cause}")
        raise
    with ctrl:
        assert ctrl.mode == mode
        yield ctrl


def test_nvme_identify_controller_and_namespace(nvme: NvmeController) -> None:
    assert nvme.info.vid == 0x1B36 and nvme.info.model == "QEMU NVMe Ctrl"
    nsid = nvme.namespace_ids()[0]
    ns = nvme.namespace(nsid)
    assert ns.blocks > 0 and ns.block_size in (512, 4096)


def test_nvme_write_read_round_trip_on_each_queue(nvme: NvmeController) -> None:
    for queue in (0, 1):
        data = bytes((i + queue) % 251 for i in range(4096))
        nvme.write(1, 8 * queue, data, queue=queue)
        assert nvme.read(1, 8 * queue, 4096 // nvme.namespace(1).block_size, queue=1 - queue) \
            == data


def test_nvme_prp_list_transfer_128k(nvme: NvmeController) -> None:
    data = bytes(i * 7 % 253 for i in range(128 << 10))
    nvme.write(1, 64, data)
    assert nvme.read(1, 64, len(data) // nvme.namespace(1).block_size) == data


def test_nvme_lba_out_of_range_status(nvme: NvmeController) -> None:
    blocks = nvme.namespace(1).blocks
    with pytest.raises(NvmeError, match="LBA out of range") as info:
        nvme.read(1, blocks)
    assert info.value.status == 0x80


def test_nvme_32_reads_in_flight(nvme: NvmeController) -> None:
    nvme.write(1, 0, bytes(range(256)) * 16)

    async def main() -> list[bytes]:
        return list(await asyncio.gather(*(nvme.read_async(1, 0, 8) for _ in range(32))))

    assert set(asyncio.run(main())) == {bytes(range(256)) * 16}
