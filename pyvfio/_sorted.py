"""A sorted set of keys with O(log n) insert, remove and floor lookup (the DMA space's index).

A plain sorted list costs O(n) per insert (``list.insert`` moves the tail); with 10^5 mappings that
is the whole cost of a map.  Keys live instead in blocks of at most ``2 * LOAD`` sorted keys with
a list of each block's largest key on top (the layout of the ``sortedcontainers`` package): a
lookup bisects the maxima, then one block, and an insert moves at most one block's tail.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from typing import Any

LOAD = 256


class SortedKeys:
    """Distinct, mutually comparable keys (ints, or tuples of ints), kept sorted."""

    __slots__ = ("_blocks", "_len", "_maxes")

    def __init__(self) -> None:
        self._blocks: list[list[Any]] = []
        self._maxes: list[Any] = []
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Any]:
        for block in self._blocks:
            yield from block

    def __contains__(self, key: object) -> bool:
        i = bisect_left(self._maxes, key)
        if i == len(self._maxes):
            return False
        block = self._blocks[i]
        j = bisect_left(block, key)
        return j < len(block) and block[j] == key

    def clear(self) -> None:
        """Remove every key."""
        self._blocks.clear()
        self._maxes.clear()
        self._len = 0

    def add(self, key: Any) -> None:
        """Insert ``key`` (the caller guarantees it is not present)."""
        maxes = self._maxes
        if not maxes:
            self._blocks.append([key])
            maxes.append(key)
        else:
            i = bisect_left(maxes, key)
            if i == len(maxes):
                i -= 1
                block = self._blocks[i]
                block.append(key)
                maxes[i] = key
            else:
                block = self._blocks[i]
                insort(block, key)
            if len(block) > 2 * LOAD:
                self._blocks[i : i + 1] = [block[:LOAD], block[LOAD:]]
                maxes[i : i + 1] = [block[LOAD - 1], block[-1]]
        self._len += 1

    def remove(self, key: Any) -> None:
        """Remove ``key``.

        Raises:
            KeyError: ``key`` is not present.
        """
        i = bisect_left(self._maxes, key)
        if i < len(self._maxes):
            block = self._blocks[i]
            j = bisect_left(block, key)
            if j < len(block) and block[j] == key:
                del block[j]
                self._len -= 1
                if not block:
                    del self._blocks[i], self._maxes[i]
                elif j == len(block):
                    self._maxes[i] = block[-1]
                return
        raise KeyError(key)

    def floor(self, key: Any) -> Any:
        """Return the largest key ``<= key``, or None."""
        maxes = self._maxes
        i = bisect_left(maxes, key)
        if i < len(maxes):
            block = self._blocks[i]
            j = bisect_right(block, key)
            if j:
                return block[j - 1]
        return maxes[i - 1] if i else None

    def irange(self, low: Any, high: Any) -> list[Any]:
        """Return the keys ``k`` with ``low <= k < high``, in order."""
        out: list[Any] = []
        i = bisect_left(self._maxes, low)
        while i < len(self._blocks):
            block = self._blocks[i]
            j = bisect_left(block, low) if not out else 0
            for k in block[j:]:
                if k >= high:
                    return out
                out.append(k)
            i += 1
        return out
