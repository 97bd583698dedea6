"""Fail-nth sweeps (issue 15): every system call of a multi-step path fails in turn.

At every injection point only the injected errno may come out (as an OSError, or the cause of a
DriverError or CloseError) and the fake's leak check must be clean.  Fake only: the VM lane's
kernels have no fault injection (CONFIG_FAULT_INJECTION / fail-nth is not configured), and a
real failure of each syscall cannot be provoked on demand.
"""

from __future__ import annotations

import errno

import pytest

import pyvfio
from pyvfio.cdev import CdevDevice
from pyvfio.edu import EduDriver
from pyvfio.fake import FakeKernel, standard_host
from pyvfio.hwpt import HWPT
from pyvfio.iommufd import IOMMUFD
from pyvfio.iova import DMAMapper
from pyvfio.testing import fail_nth_sweep


def host() -> FakeKernel:
    return standard_host(iommufd=True)


def _show(name: str, report: object) -> None:
    print(f"fail-nth {name}: {report}")  # pytest -s shows the counts (issue 15's note)


def _open_map_close(mode: str):  # type: ignore[no-untyped-def]
    def flow(k: FakeKernel) -> None:
        with pyvfio.open_device(k.labels["edu"], mode=mode, kernel=k) as dev:
            assert dev.dma is not None
            dev.enable_bus_master()
            dev.enable_interrupts("msi")
            dev.bar(0).read(0, 4)
            dev.dma.allocate(8192)
            dev.dma.map(pyvfio.allocate(4096), 0x400000).close()
    return flow


@pytest.mark.parametrize("mode", ["legacy", "iommufd", "compat"])
def test_sweep_open_device_map_and_close(mode: str) -> None:
    report = fail_nth_sweep(host, _open_map_close(mode))
    _show(f"open_device+map+close {mode}", report)
    assert report.points >= 12, report
    assert report.clean, (report.wrong, report.leaks)


@pytest.mark.parametrize("err", [errno.EIO, errno.EINVAL])
def test_sweep_with_other_errnos(err: int) -> None:
    report = fail_nth_sweep(host, _open_map_close("iommufd"), err=err)
    _show(f"open_device iommufd err {err}", report)
    assert report.clean and report.points >= 12, report


def test_sweep_hwpt_alloc_and_attach() -> None:
    def flow(k: FakeKernel) -> None:
        with IOMMUFD(k) as fd:
            ioas = fd.ioas()
            dev = CdevDevice(k.labels["edu"], kernel=k)
            hwpt = None
            try:
                dev_id = dev.bind(fd)
                hwpt = HWPT.alloc(fd, dev_id, ioas)
                dev.attach(hwpt)
                ioas.map(pyvfio.allocate(4096)).close()
                dev.detach()
            finally:
                dev.close()  # a HWPT a device is attached to cannot be destroyed (EBUSY)
                if hwpt is not None:
                    hwpt.destroy()
    report = fail_nth_sweep(host, flow)
    _show("HWPT alloc+attach", report)
    assert report.points >= 7 and report.clean, report


@pytest.mark.parametrize("mode", ["type1v2", "iommufd"])
def test_sweep_dma_mapper_map_unmap(mode: str) -> None:
    def flow(k: FakeKernel) -> None:
        with pyvfio.open_device(k.labels["edu"], mode=mode, kernel=k) as dev:
            assert dev.dma is not None
            mapper = DMAMapper(dev.dma, dma_mask=(1 << 28) - 1)
            bufs = [pyvfio.DMABuffer.anonymous(4096 << i) for i in range(3)]
            try:
                maps = [mapper.map(b) for b in bufs]
                mapper.unmap(maps[1])
                assert mapper.iova(bufs[0].vaddr) == maps[0].iova
            finally:
                try:
                    mapper.close()
                finally:
                    dev.close()  # releases what the mapper could not unmap
                    for b in bufs:
                        b.close()
    report = fail_nth_sweep(host, flow)
    _show(f"DMAMapper {mode}", report)
    assert report.points >= 10 and report.clean, report


@pytest.mark.parametrize("mode", ["legacy", "iommufd", "compat"])
def test_sweep_edu_driver_start_and_close(mode: str) -> None:
    def flow(k: FakeKernel) -> None:
        with EduDriver.open(k.labels["edu"], mode, kernel=k, timeout=0.5) as edu:
            edu.factorial(4)
            edu.dma_to_device(b"abc")
            assert edu.dma_from_device(3) == b"abc"
    report = fail_nth_sweep(host, flow)
    _show(f"edu start+close {mode}", report)
    assert report.points >= 10 and report.clean, report


def test_the_sweep_finds_a_leak_and_a_relabelled_error() -> None:
    """The sweep can fail: a flow that forgets its container on error, or renames the errno."""
    forgotten: list[pyvfio.Container] = []

    def leaky(k: FakeKernel) -> None:
        c = pyvfio.Container(k)
        forgotten.append(c)
        c.check_extension(3)
        c.close()

    def relabel(k: FakeKernel) -> None:
        try:
            pyvfio.Container(k).close()
        except OSError as exc:
            raise OSError(errno.EIO, "renamed") from exc

    leaks = fail_nth_sweep(host, leaky)
    for c in forgotten:
        c.close()  # no ResourceWarning later
    assert leaks.points == 3 and [n for n, _ in leaks.leaks] == [3] and not leaks.wrong
    wrong = fail_nth_sweep(host, relabel)
    assert wrong.points == 2 and [n for n, _ in wrong.wrong] == [1, 2] and not wrong.clean
