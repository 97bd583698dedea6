"""pyvfio.registers: register maps, width-exact accessors (proven on the fake edu's access log)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pyvfio.cdev import open_device
from pyvfio.edu import REGISTERS
from pyvfio.errors import DriverError
from pyvfio.fake import FakeKernel, standard_host
from pyvfio.fake.edu import Edu
from pyvfio.kernel import MMIO, LinuxKernel
from pyvfio.registers import (
    Field,
    Register,
    RegisterArray,
    RegisterMap,
    Registers,
    poll_until,
)
from pyvfio.uapi import PCIRegion


@pytest.fixture
def bar() -> Iterator[tuple[MMIO, Edu]]:
    k: FakeKernel = standard_host()
    bdf = str(k.labels["edu"])
    with open_device(bdf, "legacy", kernel=k) as opened:
        mmio = opened.device.mmap(PCIRegion.BAR0)
        model = k.bus.devices[bdf]
        assert isinstance(model, Edu)
        yield mmio, model
        mmio.close()
    k.assert_clean()


def test_each_register_access_is_one_access_of_its_width(bar: tuple[MMIO, Edu]) -> None:
    mmio, model = bar
    regs = REGISTERS.bind(mmio)
    model.accesses.clear()
    regs.read("ident")
    regs.write("liveness", 1)
    regs.write("dma_count", 16)
    regs.read("dma_count")
    assert list(model.accesses) == [("r", 0x00, 4), ("w", 0x04, 4), ("w", 0x90, 8), ("r", 0x90, 8)]


def test_register_values_round_trip(bar: tuple[MMIO, Edu]) -> None:
    regs = REGISTERS.bind(bar[0])
    assert regs.read("ident") == 0x010000ED
    regs.write("liveness", 0x0000FFFF)
    assert regs.read("liveness") == 0xFFFF0000
    regs.write("dma_src", 0xFFFFFFFFF000)
    assert regs.read("dma_src") == 0xFFFFFFFFF000


def test_access_rights_are_enforced(bar: tuple[MMIO, Edu]) -> None:
    regs = REGISTERS.bind(bar[0])
    with pytest.raises(PermissionError, match="read-only"):
        regs.write("ident", 1)
    with pytest.raises(PermissionError, match="write-only"):
        regs.read("irq_ack")
    with pytest.raises(KeyError, match="no register 'nope'"):
        regs.read("nope")
    with pytest.raises(ValueError, match="does not fit"):
        regs.write("liveness", 1 << 32)


def test_map_rejects_bad_declarations() -> None:
    with pytest.raises(ValueError, match="not aligned"):
        Register("a", 2, 4)
    with pytest.raises(ValueError, match="width"):
        Register("a", 0, 3)
    with pytest.raises(ValueError, match="overlap"):
        RegisterMap("d", [Register("a", 0, 8), Register("b", 4, 4)])
    with pytest.raises(ValueError, match="twice"):
        RegisterMap("d", [Register("a", 0, 4), Register("a", 4, 4)])


def test_bind_checks_registers_fit_the_mapping(bar: tuple[MMIO, Edu]) -> None:
    far = RegisterMap("d", [Register("far", 1 << 20, 4)])
    with pytest.raises(ValueError, match="outside the mapping"):
        far.bind(bar[0])


def test_poll_returns_when_condition_holds(bar: tuple[MMIO, Edu]) -> None:
    regs: Registers = REGISTERS.bind(bar[0])
    assert regs.poll("dma_cmd", mask=1, value=0, timeout=0.1) == 0


def test_poll_times_out_with_step_and_last_reading(bar: tuple[MMIO, Edu]) -> None:
    regs = REGISTERS.bind(bar[0])
    with pytest.raises(DriverError, match=r"poll edu.ident: still 0x10000ed after 0.02 s") as info:
        regs.poll("ident", mask=0xFF, value=0, timeout=0.02)
    assert info.value.step == "poll edu.ident"


def test_poll_until_counts_reads() -> None:
    readings = iter([3, 2, 1, 0])
    assert poll_until(lambda: next(readings), lambda v: v == 0, timeout=1.0, interval=0) == 0
    with pytest.raises(ValueError):
        poll_until(lambda: 0, bool, timeout=-1)


NVME_LIKE = RegisterMap("nv", [
    Register("cap", 0x00, 8, "r", fields=[Field("mqes", 0, 16), Field("dstrd", 32, 4)]),
    Register("cc", 0x14, 4, "rw", fields=[Field("en", 0), Field("iosqes", 16, 4)]),
    RegisterArray("db", 0x1000, 4, count=4, stride=8),
])


@pytest.fixture
def memfd_mmio() -> Iterator[MMIO]:
    fd = os.memfd_create("regs")
    os.ftruncate(fd, 0x2000)
    mmio = LinuxKernel().mmap(fd, 0x2000, 0)
    yield mmio
    mmio.close()
    os.close(fd)


def test_fields_get_set_decode(memfd_mmio: MMIO) -> None:
    memfd_mmio.write(0, 8, 3 << 32 | 0x3FF)
    regs = NVME_LIKE.bind(memfd_mmio)
    cap, cc = regs.reg("cap"), regs.reg("cc")
    assert cap.decode() == {"mqes": 0x3FF, "dstrd": 3}
    assert cap.get("dstrd") == 3
    assert cc.set(en=1, iosqes=6) == 1 | 6 << 16
    assert memfd_mmio.read(0x14, 4) == 1 | 6 << 16
    with pytest.raises(ValueError, match="does not fit 4 bits"):
        cc.set(iosqes=16)
    with pytest.raises(KeyError, match="no field"):
        cc.get("nope")


def test_array_elements_are_strided(memfd_mmio: MMIO) -> None:
    db = NVME_LIKE.bind(memfd_mmio).array("db")
    db[2].write(7)
    assert memfd_mmio.read(0x1010, 4) == 7 and len(db) == 4
    with pytest.raises(IndexError):
        RegisterArray("db", 0x1000, 4, count=4, stride=8).element(4)


def test_bad_fields_and_arrays_refused() -> None:
    with pytest.raises(ValueError, match="field f is outside"):
        Register("r", 0, 4, fields=[Field("f", 30, 4)])
    with pytest.raises(ValueError, match="overlaps"):
        Register("r", 0, 4, fields=[Field("a", 0, 4), Field("b", 3)])
    with pytest.raises(ValueError, match="stride"):
        RegisterArray("a", 0, 4, count=2, stride=2)
    with pytest.raises(ValueError, match="overlap"):
        RegisterMap("d", [RegisterArray("a", 0, 4, count=4, stride=4), Register("b", 8, 4)])


def test_bound_register_rights_and_overflow(memfd_mmio: MMIO) -> None:
    regs = NVME_LIKE.bind(memfd_mmio)
    with pytest.raises(PermissionError, match="read-only"):
        regs.reg("cap").write(1)
    with pytest.raises(OverflowError):
        regs.reg("cc").write(1 << 32)


def test_bound_register_after_close_valueerror_not_a_crash(memfd_mmio: MMIO) -> None:
    regs = NVME_LIKE.bind(memfd_mmio)
    cc, db = regs.reg("cc"), regs.array("db")[0]
    memfd_mmio.close()
    for access in (cc.read, lambda: db.write(1)):
        with pytest.raises(ValueError, match="closed mapping"):
            access()


def test_bound_register_on_the_fake_is_one_access(bar: tuple[MMIO, Edu]) -> None:
    mmio, model = bar
    live = REGISTERS.bind(mmio).reg("liveness")
    model.accesses.clear()
    live.write(0)
    assert live.read() == 0xFFFFFFFF
    assert list(model.accesses) == [("w", 0x04, 4), ("r", 0x04, 4)]
