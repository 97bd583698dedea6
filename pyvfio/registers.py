"""Device registers: register maps with bitfields and strided arrays, fast bound accessors, polling.

Declare a map once, as the datasheet lists it, and bind it to a BAR::

    NVME = RegisterMap("nvme", [
        Register("cap", 0x00, 8, "r", fields=[Field("mqes", 0, 16), Field("dstrd", 32, 4)]),
        Register("cc", 0x14, 4, "rw", fields=[Field("en", 0), Field("iosqes", 16, 4)]),
    ])
    regs = NVME.bind(device.mmap(0))
    cap = regs.reg("cap")           # bind once: cap.read() is one 64-bit load
    cap.get("dstrd")                # a field of a fresh reading; cap.decode() names them all
    doorbells = RegisterArray("sqtdbl", 0x1000, 4, count=64, stride=8).bind(mmio)
    doorbells[1].write(tail)        # one 32-bit store

Every access is exactly one load or store of the register's width: devices such as QEMU's edu
ignore accesses of any other width.  The fast path: on a real mapping
(:class:`pyvfio.kernel.LinuxMMIO`) a :class:`BoundRegister` holds the mapping's cffi typed pointer
and its index, so ``read()`` is one attribute call and one ``p[i]`` -- offsets, widths, alignment,
bounds and access rights are all checked when the map is declared and bound, not per access
(``tools/bench`` measures it against a bare cffi pointer: ``register_vs_cffi_pointer``).  When the
mapping closes, its bound registers are switched to ones that raise ``ValueError``, so a late access
never touches unmapped memory.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pyvfio.errors import DriverError
from pyvfio.kernel import MMIO, WIDTHS

ACCESS = ("r", "w", "rw")


@dataclass(frozen=True)
class Field:
    """A bitfield: ``width`` bits from bit ``lsb`` of its register."""

    name: str
    lsb: int
    width: int = 1

    @property
    def mask(self) -> int:
        """The field's bits in place."""
        return ((1 << self.width) - 1) << self.lsb

    def get(self, value: int) -> int:
        """Extract the field from a register value."""
        return value >> self.lsb & ((1 << self.width) - 1)

    def put(self, value: int, field_value: int) -> int:
        """Return ``value`` with the field replaced by ``field_value``.

        Raises:
            ValueError: ``field_value`` does not fit the field.
        """
        if not 0 <= field_value < 1 << self.width:
            raise ValueError(f"field {self.name}: {field_value:#x} does not fit {self.width} bits")
        return value & ~self.mask | field_value << self.lsb


@dataclass(frozen=True)
class Register:
    """One register: ``name``, byte ``offset`` in the BAR, ``width`` in bytes, ``access``, and
    its bitfields."""

    name: str
    offset: int
    width: int
    access: str = "rw"
    fields: Sequence[Field] = ()

    def __post_init__(self) -> None:
        if self.width not in WIDTHS:
            raise ValueError(f"register {self.name}: width must be 1, 2, 4 or 8, not {self.width}")
        if self.offset < 0 or self.offset % self.width:
            raise ValueError(f"register {self.name}: offset {self.offset:#x} is not aligned "
                             f"to its width {self.width}")
        if self.access not in ACCESS:
            raise ValueError(f"register {self.name}: access must be r, w or rw")
        object.__setattr__(self, "fields", tuple(self.fields))
        seen = 0
        for f in self.fields:
            if f.lsb < 0 or f.width < 1 or f.lsb + f.width > 8 * self.width or seen & f.mask:
                raise ValueError(f"register {self.name}: field {f.name} is outside the register "
                                 "or overlaps another field")
            seen |= f.mask

    @property
    def mask(self) -> int:
        """All bits of the register."""
        return (1 << 8 * self.width) - 1

    def field(self, name: str) -> Field:
        """Return field ``name``. Raises KeyError."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name!r}")

    def decode(self, value: int) -> dict[str, int]:
        """Return every field of ``value`` by name."""
        return {f.name: f.get(value) for f in self.fields}

    def encode(self, value: int = 0, **fields: int) -> int:
        """Return ``value`` with ``fields`` set. Raises KeyError, ValueError (does not fit)."""
        for name, v in fields.items():
            value = self.field(name).put(value, v)
        return value


@dataclass(frozen=True)
class RegisterArray:
    """``count`` registers of one kind, ``stride`` bytes apart from ``offset`` (doorbells)."""

    name: str
    offset: int
    width: int
    count: int
    stride: int
    access: str = "rw"
    fields: Sequence[Field] = ()

    def __post_init__(self) -> None:
        if self.count < 1 or self.stride < self.width or self.stride % self.width:
            raise ValueError(f"register array {self.name}: count must be >= 1 and stride a "
                             f"multiple of the width {self.width}, at least it")
        self.element(0)  # checks width, offset, access and fields

    def element(self, i: int) -> Register:
        """Return element ``i`` as a :class:`Register` named ``name[i]``. Raises IndexError."""
        if not 0 <= i < self.count:
            raise IndexError(f"{self.name}[{i}] is outside the array of {self.count}")
        return Register(f"{self.name}[{i}]", self.offset + i * self.stride, self.width,
                        self.access, self.fields)

    def bind(self, mmio: MMIO) -> list[BoundRegister]:
        """Return the bound elements on ``mmio``. Raises ValueError: outside the mapping."""
        return [bind_register(self.element(i), mmio) for i in range(self.count)]


class _Refused:
    """Stands in for a typed pointer where an access must fail: wrong direction, or unmapped."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __getitem__(self, index: int) -> int:
        raise self.error

    def __setitem__(self, index: int, value: int) -> None:
        raise self.error


class _Accessor:
    """A mapping without typed pointers (the fake's BARs): index 0 is the register at ``offset``."""

    __slots__ = ("mmio", "offset", "width")

    def __init__(self, mmio: MMIO, offset: int, width: int) -> None:
        self.mmio, self.offset, self.width = mmio, offset, width

    def __getitem__(self, index: int) -> int:
        return self.mmio.read(self.offset, self.width)

    def __setitem__(self, index: int, value: int) -> None:
        self.mmio.write(self.offset, self.width, value)


class BoundRegister:
    """A register on a mapped BAR.  ``read``/``write`` are one access, nothing checked per call
    (a value that does not fit raises ``OverflowError`` or ``ValueError`` from the store)."""

    __slots__ = ("_rp", "_wp", "register")

    def __init__(self, register: Register, rp: Any, wp: Any) -> None:
        # rp/wp point at the register itself, so an access is p[0]: a constant index, no
        # attribute load for it (tools/bench: a third of the cost over a bare pointer)
        self.register, self._rp, self._wp = register, rp, wp

    def __repr__(self) -> str:
        return f"<BoundRegister {self.register.name} at {self.register.offset:#x}>"

    def read(self) -> int:
        """Load the register. Raises PermissionError (write-only), ValueError (unmapped)."""
        return self._rp[0]  # type: ignore[no-any-return]

    def write(self, value: int) -> None:
        """Store ``value``. Raises PermissionError (read-only), ValueError (unmapped),
        OverflowError (does not fit)."""
        self._wp[0] = value

    def get(self, field: str) -> int:
        """Read the register and return field ``field``. Raises KeyError."""
        return self.register.field(field).get(self.read())

    def set(self, **fields: int) -> int:
        """Read, replace ``fields``, write back; return the value written (read-modify-write)."""
        value = self.register.encode(self.read(), **fields)
        self.write(value)
        return value

    def decode(self, value: int | None = None) -> dict[str, int]:
        """Return the fields of ``value`` (a fresh reading when None) by name."""
        return self.register.decode(self.read() if value is None else value)

    def _unmapped(self) -> None:
        self._rp = self._wp = _Refused(ValueError("I/O operation on a closed mapping"))


def bind_register(reg: Register, mmio: MMIO) -> BoundRegister:
    """Bind one register to ``mmio``, checking it fits (the only check an access gets).

    Raises:
        ValueError: the register lies outside the mapping.
    """
    if reg.offset + reg.width > len(mmio):
        raise ValueError(f"register {reg.name} at {reg.offset:#x} is outside the mapping of "
                         f"{len(mmio):#x} bytes")
    pointer, pointer_at = getattr(mmio, "pointer", None), getattr(mmio, "pointer_at", None)
    if pointer is not None:
        ptr = pointer(reg.width) + reg.offset // reg.width
    else:  # a sparse mapping: the typed pointer of the area the register lies in, if mapped
        ptr = pointer_at(reg.offset, reg.width) if pointer_at is not None else None
        if ptr is None:
            ptr = _Accessor(mmio, reg.offset, reg.width)
    rp = ptr if "r" in reg.access else _Refused(PermissionError(f"register {reg.name} is "
                                                                "write-only"))
    wp = ptr if "w" in reg.access else _Refused(PermissionError(f"register {reg.name} is "
                                                                "read-only"))
    bound = BoundRegister(reg, rp, wp)
    on_close = getattr(mmio, "on_close", None)
    if on_close is not None:
        on_close(bound._unmapped)
    return bound


class RegisterMap:
    """A device's registers and register arrays by name; :meth:`bind` puts them on a BAR."""

    def __init__(self, device: str, registers: Iterable[Register | RegisterArray]) -> None:
        """Collect ``registers`` of ``device`` (a name for messages).

        Raises:
            ValueError: two registers share a name or overlap.
        """
        self.device = device
        self.registers: dict[str, Register] = {}
        self.arrays: dict[str, RegisterArray] = {}
        spans: list[tuple[int, int, str]] = []
        for reg in registers:
            if reg.name in self.registers or reg.name in self.arrays:
                raise ValueError(f"{device}: register {reg.name} declared twice")
            if isinstance(reg, RegisterArray):
                self.arrays[reg.name] = reg
                elems = [reg.element(i) for i in range(reg.count)]
            else:
                self.registers[reg.name] = reg
                elems = [reg]
            spans.extend((e.offset, e.offset + e.width, e.name) for e in elems)
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
        try:
            return Registers(self, mmio)
        except ValueError as exc:
            raise ValueError(f"{self.device}: {exc}") from None


class Registers:
    """A :class:`RegisterMap` bound to a mapped BAR: :meth:`reg` and :meth:`array` give the fast
    bound accessors; :meth:`read`/:meth:`write` by name check the value too."""

    def __init__(self, regmap: RegisterMap, mmio: MMIO) -> None:
        self.map, self.mmio = regmap, mmio
        self._bound = {name: bind_register(r, mmio) for name, r in regmap.registers.items()}
        self._arrays = {name: a.bind(mmio) for name, a in regmap.arrays.items()}

    def __repr__(self) -> str:
        return f"<Registers {self.map.device} on {self.mmio!r}>"

    def reg(self, name: str) -> BoundRegister:
        """Return register ``name`` bound. Raises KeyError."""
        try:
            return self._bound[name]
        except KeyError:
            raise KeyError(f"{self.map.device} has no register {name!r}") from None

    def array(self, name: str) -> list[BoundRegister]:
        """Return the bound elements of register array ``name``. Raises KeyError."""
        try:
            return self._arrays[name]
        except KeyError:
            raise KeyError(f"{self.map.device} has no register array {name!r}") from None

    def read(self, name: str) -> int:
        """Load register ``name`` in one access of its width.

        Raises:
            KeyError: no such register.  PermissionError: the register is write-only.
        """
        bound = self.reg(name)
        if "r" not in bound.register.access:
            raise PermissionError(f"{self.map.device}: register {name} is write-only")
        return bound.read()

    def write(self, name: str, value: int) -> None:
        """Store ``value`` to register ``name`` in one access of its width.

        Raises:
            KeyError: no such register.  PermissionError: read-only.
            ValueError: ``value`` does not fit the register.
        """
        bound = self.reg(name)
        reg = bound.register
        if "w" not in reg.access:
            raise PermissionError(f"{self.map.device}: register {name} is read-only")
        if not isinstance(value, int) or not 0 <= value <= reg.mask:
            raise ValueError(f"{self.map.device}: {value!r} does not fit {name} "
                             f"({reg.width} bytes)")
        bound.write(value)

    def poll(self, name: str, *, mask: int, value: int, timeout: float,
             interval: float = 0.001) -> int:
        """Read ``name`` until ``reading & mask == value``; return the last reading.

        Raises:
            DriverError: step ``poll <name>``: the condition did not hold within ``timeout``.
        """
        bound = self.reg(name)
        return poll_until(bound.read, lambda v: v & mask == value,
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
