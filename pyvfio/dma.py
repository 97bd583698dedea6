"""DMA mappings, page-aligned buffers and the argument checks of every DMA space.

A device sees memory through its IOMMU: the driver maps a buffer of its own at an IOVA and gives the
device that IOVA.  :class:`Mapping` keeps the buffer alive for as long as the kernel holds its
address, and unmaps it when closed.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from typing import Any, Protocol

from pyvfio._ffi import ffi

PAGE_SIZE = mmap.PAGESIZE


@dataclass(frozen=True)
class IOVARange:
    """A range of IOVAs a device may use; ``last`` is inclusive, as the kernel reports it."""

    start: int
    last: int

    @property
    def size(self) -> int:
        """Number of bytes in the range."""
        return self.last - self.start + 1

    def __contains__(self, iova: object) -> bool:
        return isinstance(iova, int) and self.start <= iova <= self.last


class _Owner(Protocol):
    def _unmap_mapping(self, mapping: Mapping) -> None: ...


def check_int(name: str, value: object, minimum: int = 0, maximum: int = (1 << 64) - 1) -> int:
    """Return ``value`` if it is an int in ``[minimum, maximum]``.

    Raises:
        TypeError: ``value`` is not an int (bools are refused).
        ValueError: ``value`` is out of range.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be in [{minimum:#x}, {maximum:#x}], not {value:#x}")
    return value


def buffer_address(buffer: Any, *, writable: bool = True) -> tuple[Any, int, int]:
    """Return ``(cdata, address, size)`` of a buffer-protocol object, checked for DMA use.

    The cdata keeps the buffer's export alive; keep it as long as the kernel holds the address.
    A :class:`~pyvfio.memory.DMABuffer` is accepted on every Python: before 3.12 (PEP 688) a
    Python class cannot export a buffer, so it hands over its mmap through ``_dma_export()``.

    Raises:
        TypeError: ``buffer`` does not export a buffer, or a read-only one while ``writable``.
        ValueError: ``buffer`` is empty, or its address or size is not page aligned.
    """
    export = (_HOOKS.get(type(buffer)) or _hooks(type(buffer)))[0]
    target = export(buffer) if export is not None else buffer
    if isinstance(target, str):
        raise TypeError(f"buffer must support the buffer protocol, not {type(buffer).__name__}")
    try:
        cdata = _from_buffer(_CHARS, target, writable)
    except TypeError as exc:
        if not _is_buffer(target):
            raise TypeError(
                f"buffer must support the buffer protocol, not {type(buffer).__name__}") from None
        raise TypeError(f"buffer: {exc} (DMA the device writes needs a writable buffer)") from exc
    except BufferError as exc:
        raise TypeError(f"buffer: {exc} (DMA the device writes needs a writable buffer)") from exc
    size = len(cdata)  # from_buffer gives a char[] of the buffer's length
    address = int(_cast(_UINTPTR, cdata))
    if size == 0:
        raise ValueError("buffer must not be empty")
    if address % PAGE_SIZE or size % PAGE_SIZE:
        raise ValueError(
            f"buffer must be page aligned ({PAGE_SIZE:#x}) in address and size; got "
            f"{address:#x}+{size:#x} (allocate it with pyvfio.dma.allocate)"
        )
    return cdata, address, size


_from_buffer, _cast, _UINTPTR = ffi.from_buffer, ffi.cast, ffi.typeof("uintptr_t")
# from_buffer's default type, passed so that require_writable can be positional: cffi parses a
# keyword argument in ~200 ns, as much as the call itself (the hot path: tools/bench part 6)
_CHARS = ffi.typeof("char[]")
_HOOKS: dict[type, tuple[Any, Any]] = {}


def _hooks(kind: type) -> tuple[Any, Any]:
    """``(_dma_export, _track)`` of a buffer type (a DMABuffer has both), cached per type."""
    hooks = _HOOKS.get(kind)
    if hooks is None:
        hooks = _HOOKS[kind] = (getattr(kind, "_dma_export", None), getattr(kind, "_track", None))
    return hooks


def _is_buffer(obj: object) -> bool:
    try:
        memoryview(obj).release()  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def allocate(size: int) -> mmap.mmap:
    """Return a zeroed, page-aligned anonymous buffer of ``size`` bytes rounded up to pages.

    Raises:
        TypeError: ``size`` is not an int.
        ValueError: ``size`` is not positive.
    """
    check_int("size", size, 1)
    return mmap.mmap(-1, -(-size // PAGE_SIZE) * PAGE_SIZE)


class Mapping:
    """A buffer mapped into a DMA space.  Keeps the buffer alive until unmapped.

    Attributes:
        iova: the IOVA the device uses.
        size: bytes mapped.
        vaddr: the buffer's address in this process.
        readable, writable: the device's access rights.
    """

    __slots__ = ("__weakref__", "_buffer", "_cdata", "_owner", "iova", "readable", "size",
                 "vaddr", "writable")

    def __init__(
        self, owner: _Owner, buffer: Any, cdata: Any, iova: int, *, rw: tuple[bool, bool],
        vaddr: int | None = None, size: int | None = None,
    ) -> None:
        self._owner: _Owner | None = owner
        self._buffer = buffer
        self._cdata = cdata  # holds the buffer export: the kernel has its address
        self.iova = iova
        self.size = len(ffi.buffer(cdata)) if size is None else size
        self.vaddr = int(ffi.cast("uintptr_t", cdata)) if vaddr is None else vaddr
        self.readable, self.writable = rw

    def __repr__(self) -> str:
        state = "closed" if self.closed else "mapped"
        return f"<Mapping iova={self.iova:#x} size={self.size:#x} {state}>"

    @property
    def buffer(self) -> Any:
        """The mapped buffer object."""
        return self._buffer

    @property
    def closed(self) -> bool:
        """True once unmapped."""
        return self._owner is None

    def close(self) -> None:
        """Unmap (idempotent).

        Raises:
            OSError: the kernel refused the unmap (the mapping stays open).
        """
        if self._owner is not None:
            self._owner._unmap_mapping(self)

    def _release(self) -> None:
        """Drop the buffer export once the kernel forgot the address (called by the owner)."""
        self._owner, self._cdata = None, None

    def _replace(self, buffer: Any, cdata: Any) -> None:
        """Point the mapping at a new buffer of the same size (VADDR update)."""
        self._buffer, self._cdata = buffer, cdata
        self.vaddr = int(ffi.cast("uintptr_t", cdata))

    def __enter__(self) -> Mapping:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def __getattr__(name: str) -> Any:
    if name == "DMASpace":  # moved to pyvfio.space (it imports this module)
        from pyvfio.space import DMASpace  # noqa: PLC0415

        return DMASpace
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
