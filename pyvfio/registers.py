"""Device registers: a compact register map, width-exact accessors on a mapped BAR, and polling.

Declare a map once, as the datasheet lists it, and bind it to a BAR::

    EDU = RegisterMap("edu", [
        Register("ident", 0x00, 4, "r"),
        Register("dma_cmd", 0x98, 8, "rw"),
    ])
    regs = EDU.bind(device.mmap(0))
    regs.read("ident")            # one 32-bit load
    regs.poll("dma_cmd", mask=1, value=0, timeout=1.0)

Every access is exactly one load or store of the register's width (the MMIO's typed pointer, see
:class:`pyvfio.kernel.LinuxMMIO`): devices such as QEMU's edu ignore accesses of any other width.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pyvfio.errors import DriverError
from pyvfio.kernel import MMIO, WIDTHS

ACCESS = ("r", "w", "rw")


@dataclass(frozen=True)
class Register:
    """One register: ``name``, byte ``offset`` in the BAR, ``width`` in bytes, ``access``."""

    name: str
    offset: int
    width: int
    access: str = "rw"

    def __post_init__(self) -> None:
        if self.width not in WIDTHS:
            raise ValueError(f"register {self.name}: width must be 1, 2, 4 or 8, not {self.width}")
        if self.offset < 0 or self.offset % self.width:
            raise ValueError(f"register {self.name}: offset {self.offset:#x} is not aligned "
                             f"to its width {self.width}")
        if self.access not in ACCESS:
            raise ValueError(f"register {self.name}: access must be r, w or rw")

    @property
    def mask(self) -> int:
        """All bits of the register."""
        return (1 << 8 * self.width) - 1


class RegisterMap:
    """A device's registers by name; :meth:`bind` puts them on a mapped BAR."""

    def __init__(self, device: str, registers: Iterable[Register]) -> None:
        """Collect ``registers`` of ``device`` (a name for messages).

        Raises:
            ValueError: two registers share a name or overlap.
        """
        self.device = device
        self.registers: dict[str, Register] = {}
        spans: list[tuple[int, int, str]] = []
        for reg in registers:
            if reg.name in self.registers:
                raise ValueError(f"{device}: register {reg.name} declared twice")
            spans.append((reg.offset, reg.offset + reg.width, reg.name))
            self.registers[reg.name] = reg
        spans.sort()
        for (_, end, a), (start, _, b) in itertools.pairwise(spans):
            if start < end:
                raise ValueError(f"{device}: registers {a} and {b} overlap")

    def __getitem__(self, name: str) -> Register:
        try:
            return self.registers[name]
        except KeyError:
            raise KeyError(f"{self.device} has no register {name!r}") from None

    def bind(self, mmio: MMIO) -> Registers:
        """Return accessors for these registers on ``mmio``.

        Raises:
            ValueError: a register lies outside the mapping.
        """
        for reg in self.registers.values():
            if reg.offset + reg.width > len(mmio):
                raise ValueError(f"{self.device}: register {reg.name} at {reg.offset:#x} is "
                                 f"outside the mapping of {len(mmio):#x} bytes")
        return Registers(self, mmio)


class Registers:
    """A :class:`RegisterMap` bound to a mapped BAR: named, width-exact reads and writes."""

    def __init__(self, regmap: RegisterMap, mmio: MMIO) -> None:
        self.map, self.mmio = regmap, mmio

    def __repr__(self) -> str:
        return f"<Registers {self.map.device} on {self.mmio!r}>"

    def read(self, name: str) -> int:
        """Load register ``name`` in one access of its width.

        Raises:
            KeyError: no such register.  PermissionError: the register is write-only.
        """
        reg = self.map[name]
        if "r" not in reg.access:
            raise PermissionError(f"{self.map.device}: register {name} is write-only")
        return self.mmio.read(reg.offset, reg.width)

    def write(self, name: str, value: int) -> None:
        """Store ``value`` to register ``name`` in one access of its width.

        Raises:
            KeyError: no such register.  PermissionError: read-only.
            ValueError: ``value`` does not fit the register.
        """
        reg = self.map[name]
        if "w" not in reg.access:
            raise PermissionError(f"{self.map.device}: register {name} is read-only")
        if not 0 <= value <= reg.mask:
            raise ValueError(f"{self.map.device}: {value:#x} does not fit {name} "
                             f"({reg.width} bytes)")
        self.mmio.write(reg.offset, reg.width, value)

    def poll(self, name: str, *, mask: int, value: int, timeout: float,
             interval: float = 0.001) -> int:
        """Read ``name`` until ``reading & mask == value``; return the last reading.

        Raises:
            DriverError: step ``poll <name>``: the condition did not hold within ``timeout``.
        """
        return poll_until(lambda: self.read(name), lambda v: v & mask == value,
                          timeout=timeout, interval=interval,
                          step=f"poll {self.map.device}.{name}",
                          want=f"& {mask:#x} == {value:#x}")


def poll_until(read: Callable[[], int], done: Callable[[int], bool], *, timeout: float,
               interval: float = 0.001, step: str = "poll", want: str = "condition") -> int:
    """Call ``read`` until ``done(reading)``; sleep ``interval`` seconds (growing to 10 ms) between.

    Returns:
        The reading that satisfied ``done``.

    Raises:
        ValueError: ``timeout`` or ``interval`` is negative.
        DriverError: ``timeout`` seconds passed first; the message has the last reading.
    """
    if timeout < 0 or interval < 0:
        raise ValueError("timeout and interval must be >= 0")
    deadline = time.monotonic() + timeout
    while True:
        reading = read()
        if done(reading):
            return reading
        if time.monotonic() >= deadline:
            raise DriverError(step, f"still {reading:#x} after {timeout} s, wanted {want}")
        time.sleep(interval)
        interval = min(interval * 2, 0.01)
