"""pyvfio.nvme on the fake NVMe controller (pyvfio.fake.nvme, QEMU 7.2's nvme model).

The same driver runs on QEMU's nvme in the VM lane (tests/conformance/test_nvme.py); these
cases need the fake's knobs (a file-backed namespace, a doorbell stride, injected DMA faults,
the model's command log).
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvfio import cli
from pyvfio.cdev import open_device
from pyvfio.errors import DriverError
from pyvfio.fake import FakeKernel, standard_host
from pyvfio.fake.nvme import MSIX_PBA, MSIX_TABLE, NvmeCtrl, add_nvme
from pyvfio.fake.nvme_cmd import Namespace
from pyvfio.nvme import NvmeController, NvmeError
from pyvfio.uapi import PCIRegion


@pytest.fixture
def host() -> Iterator[tuple[FakeKernel, NvmeCtrl]]:
    k = standard_host(iommufd=True)
    ctrl = add_nvme(k)
    yield k, ctrl
    k.assert_clean()


@pytest.mark.parametrize("mode", ["legacy", "iommufd"])
@pytest.mark.parametrize("irq", ["msix", "poll"])
def test_identify_write_read_round_trip(host: tuple[FakeKernel, NvmeCtrl], mode: str,
                                        irq: str) -> None:
    k, model = host
    with NvmeController.open(str(k.labels["nvme"]), mode, kernel=k, irq=irq) as nvme:
        assert nvme.info.model == "QEMU NVMe Ctrl" and nvme.info.mdts == 7
        assert nvme.namespace_ids() == [1]
        assert nvme.namespace(1).block_size == 512
        nvme.write(1, 3, b"\x5a" * 512)
        assert nvme.read(1, 3) == b"\x5a" * 512
        nvme.shutdown()
        assert list(model.cqs) == [0] and model.regs[0x1C] & 0xC == 0x8  # SHST complete
    assert model.namespaces[1].read(3 * 512, 512) == b"\x5a" * 512


def test_transfer_over_two_pages_uses_a_prp_list(host: tuple[FakeKernel, NvmeCtrl]) -> None:
    k, _ = host
    data = bytes(range(256)) * 1024  # 256 KiB: 64 pages, a PRP list of 63 entries
    with NvmeController.open(str(k.labels["nvme"]), kernel=k) as nvme:
        nvme.write(1, 0, data)
        assert nvme.read(1, 0, len(data) // 512) == data


def test_msix_interrupts_signal_the_queue_vector(host: tuple[FakeKernel, NvmeCtrl]) -> None:
    k, model = host
    with NvmeController.open(str(k.labels["nvme"]), kernel=k, io_queues=2) as nvme:
        sink = model.irq
        assert sink is not None
        nvme.read(1, 0, queue=1)
        assert sink.signals[-1] == (2, 2)  # (VFIO_PCI_MSIX_IRQ_INDEX, vector of I/O queue 2)
        nvme.read(1, 0, queue=0)
        assert sink.signals[-1] == (2, 1)


def test_lba_out_of_range_is_an_nvme_status(host: tuple[FakeKernel, NvmeCtrl]) -> None:
    k, _ = host
    with NvmeController.open(str(k.labels["nvme"]), kernel=k, irq="poll") as nvme:
        blocks = nvme.namespace(1).blocks
        with pytest.raises(NvmeError, match="LBA out of range") as info:
            nvme.read(1, blocks)
        assert info.value.status == 0x80 and info.value.dnr
        with pytest.raises(NvmeError, match="invalid namespace"):
            nvme.namespace(300)
        with pytest.raises(DriverError, match="namespace 7 is not active"):
            nvme.namespace(7)


def test_unmapped_buffer_is_a_data_transfer_error(host: tuple[FakeKernel, NvmeCtrl]) -> None:
    k, _ = host
    with NvmeController.open(str(k.labels["nvme"]), kernel=k, irq="poll") as nvme:
        q = nvme.queues[0]
        cid = q.io(0x02, 1, 0, 1, 0x7FFF0000, 512)  # an IOVA nothing is mapped at
        with pytest.raises(NvmeError, match="data transfer error"):
            q.result("read", q.pair.wait(cid, 1.0))


def test_file_backed_namespace_and_doorbell_stride(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * (64 << 10))
    k = standard_host(iommufd=True)
    model = add_nvme(k, namespaces={1: Namespace(path=str(image))}, dstrd=2)
    with NvmeController.open(str(k.labels["nvme"]), kernel=k, io_queues=2) as nvme:
        nvme.write(1, 1, b"F" * 512, queue=1)
    model.close()
    assert image.read_bytes()[512:1024] == b"F" * 512
    k.assert_clean()


def test_async_reads_in_flight_together(host: tuple[FakeKernel, NvmeCtrl]) -> None:
    k, _ = host
    with NvmeController.open(str(k.labels["nvme"]), kernel=k) as nvme:
        for i in range(4):
            nvme.write(1, i, bytes([i]) * 512)

        async def main() -> list[bytes]:
            return list(await asyncio.gather(*(nvme.read_async(1, i % 4) for i in range(32))))

        got = asyncio.run(main())
        assert [g[0] for g in got] == [i % 4 for i in range(32)]


def test_bad_admin_queue_setup_sets_cfs(host: tuple[FakeKernel, NvmeCtrl]) -> None:
    k, model = host
    with open_device(str(k.labels["nvme"]), "legacy", kernel=k) as opened:
        bar = opened.device.mmap(PCIRegion.BAR0, 0, 0x2000)
        bar.write(0x14, 4, 1 | 6 << 16 | 4 << 20)  # CC.EN with ASQ = ACQ = 0
        assert bar.read(0x1C, 4) & 2  # CSTS.CFS
        assert "ASQ/ACQ" in model.errors[-1]
        bar.close()


def test_msix_table_sits_where_qemu_puts_it(host: tuple[FakeKernel, NvmeCtrl]) -> None:
    k, model = host
    cap = model.caps[0x11]
    table, pba = struct.unpack_from("<II", model.config, cap + 4)
    assert (table, pba) == (MSIX_TABLE, MSIX_PBA)
    with open_device(str(k.labels["nvme"]), "legacy", kernel=k) as opened:
        assert opened.device.read(0, MSIX_TABLE, 4) == b"\xff" * 4  # vfio-pci hides the table
        assert opened.device.read(0, 0x8, 4) == struct.pack("<I", 0x00010400)  # VS 1.4


def test_pin_interrupt_follows_pending_completions(host: tuple[FakeKernel, NvmeCtrl]) -> None:
    k, model = host
    levels: list[bool] = []
    model.set_intx = levels.append  # type: ignore[method-assign]
    with NvmeController.open(str(k.labels["nvme"]), kernel=k, irq="poll") as nvme:
        nvme.read(1, 0)
    assert True in levels and levels[-1] is False  # raised on completion, dropped once consumed


def test_open_missing_device_is_a_driver_error(host: tuple[FakeKernel, NvmeCtrl]) -> None:
    k, _ = host
    with pytest.raises(DriverError, match="open"):
        NvmeController.open("0000:00:1f.0", kernel=k)


def test_demo_driver_nvme_runs_on_the_fake(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--driver", "nvme", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and doc["driver"] == "nvme" and doc["kernel"] == "fake"
    assert [s["name"] for s in doc["steps"]][-3:] == [
        "verify round trip", "32 reads of 4 KiB in flight (asyncio)", "shutdown and close"]


def test_too_few_msix_vectors_is_a_driver_error(host: tuple[FakeKernel, NvmeCtrl]) -> None:
    k, model = host
    model.cfg.msix_vectors = 2  # vfio-pci reports what the capability offers
    with pytest.raises(DriverError, match="enable MSI-X") as info:
        NvmeController.open(str(k.labels["nvme"]), kernel=k, io_queues=2)
    assert info.value.hint and "irq='poll'" in info.value.hint


def test_polled_queue_with_a_vector_is_refused_as_qemu_does(
        host: tuple[FakeKernel, NvmeCtrl]) -> None:
    k, model = host
    with NvmeController.open(str(k.labels["nvme"]), kernel=k, irq="poll") as nvme:
        q = nvme.queues[0]
        with pytest.raises(NvmeError, match="invalid interrupt vector"):
            nvme.admin.run("create I/O CQ", 0x05, data=(q.cq_mem.iova, 16),
                           cdw=(5 | 3 << 16, 1 | 5 << 16))  # MSI-X off: only vector 0
