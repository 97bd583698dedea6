"""An in-memory sysfs: directories, attributes with read/write hooks, and relative symlinks.

Paths are relative to the sysfs root (``bus/pci/devices/0000:00:03.0/vendor``), as the
:class:`pyvfio.kernel.Kernel` seam gives them.  Symlinks hold relative targets as the kernel's do
(``../../../kernel/iommu_groups/5``) and are followed in every component but the last.
"""

from __future__ import annotations

import errno
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field

from pyvfio.fake.memory import kerr

Reader = Callable[[], str]
Writer = Callable[[str], None]


@dataclass
class Attr:
    """A sysfs attribute: ``read`` renders it, ``write`` (None = read-only) stores into it."""

    read: Reader
    write: Writer | None = None


@dataclass
class Link:
    """A symlink with a target relative to the link's directory."""

    target: str


@dataclass
class Dir:
    """A directory: name -> Attr | Link | Dir."""

    entries: dict[str, Attr | Link | Dir] = field(default_factory=dict)


Node = Attr | Link | Dir


class SysfsTree:
    """The tree, with the path operations of the Kernel seam (raising OSError like the VFS)."""

    def __init__(self) -> None:
        self.root = Dir()

    # -- building --------------------------------------------------------------------------

    def mkdir(self, path: str) -> Dir:
        """Create ``path`` and its parents (like ``mkdir -p``); return the directory."""
        node = self.root
        for part in _parts(path):
            child = node.entries.setdefault(part, Dir())
            if not isinstance(child, Dir):
                raise kerr(errno.ENOTDIR, path)
            node = child
        return node

    def add_attr(self, path: str, read: Reader | str, write: Writer | None = None) -> None:
        """Add an attribute; ``read`` may be a constant string."""
        reader = (lambda value=read: value) if isinstance(read, str) else read
        parent, name = posixpath.split(path)
        self.mkdir(parent).entries[name] = Attr(reader, write)

    def symlink(self, path: str, target: str) -> None:
        """Add a symlink at ``path`` pointing to the absolute (root-relative) ``target``."""
        parent, name = posixpath.split(path)
        rel = posixpath.relpath(target, parent or ".")
        self.mkdir(parent).entries[name] = Link(rel)

    def remove(self, path: str) -> None:
        """Remove ``path`` (any node kind) if it exists."""
        parent, name = posixpath.split(path)
        try:
            node = self._lookup(parent, follow_last=True)
        except OSError:
            return
        if isinstance(node, Dir):
            node.entries.pop(name, None)

    # -- the seam's operations --------------------------------------------------------------

    def read(self, path: str) -> str:
        """Read an attribute, trailing newline stripped. Raises ENOENT, EISDIR, EACCES."""
        node = self._lookup(path, follow_last=True)
        if isinstance(node, Dir):
            raise kerr(errno.EISDIR, path)
        assert isinstance(node, Attr)
        return node.read().rstrip("\n")

    def write(self, path: str, value: str) -> None:
        """Write an attribute (one write(2)). Raises ENOENT, EISDIR, EACCES or the hook's errno."""
        node = self._lookup(path, follow_last=True)
        if isinstance(node, Dir):
            raise kerr(errno.EISDIR, path)
        assert isinstance(node, Attr)
        if node.write is None:
            raise kerr(errno.EACCES, path)
        try:
            node.write(value)
        except OSError as exc:
            raise kerr(exc.errno or errno.EIO, path) from None

    def readlink(self, path: str) -> str:
        """Return a symlink's relative target. Raises ENOENT, EINVAL (not a link)."""
        node = self._lookup(path, follow_last=False)
        if not isinstance(node, Link):
            raise kerr(errno.EINVAL, path)
        return node.target

    def listdir(self, path: str) -> list[str]:
        """List a directory, sorted. Raises ENOENT, ENOTDIR."""
        node = self._lookup(path, follow_last=True)
        if not isinstance(node, Dir):
            raise kerr(errno.ENOTDIR, path)
        return sorted(node.entries)

    def exists(self, path: str) -> bool:
        """Tell whether ``path`` exists (a dangling link counts, as ``os.path.lexists``)."""
        try:
            self._lookup(path, follow_last=False)
        except OSError:
            return False
        return True

    def _lookup(self, path: str, *, follow_last: bool, depth: int = 0) -> Node:
        if depth > 8:
            raise kerr(errno.ELOOP, path)
        node: Node = self.root
        parts = _parts(path)
        for i, part in enumerate(parts):
            if not isinstance(node, Dir) or part not in node.entries:
                raise kerr(errno.ENOENT, path)
            node = node.entries[part]
            last = i == len(parts) - 1
            if isinstance(node, Link) and (follow_last or not last):
                here = "/".join(parts[:i])
                target = posixpath.normpath(posixpath.join(here, node.target))
                rest = "/".join([target, *parts[i + 1 :]])
                return self._lookup(rest, follow_last=follow_last, depth=depth + 1)
        return node


def _parts(path: str) -> list[str]:
    if path.startswith("/") or ".." in path.split("/"):
        raise ValueError(f"sysfs path must be relative to the root without '..': {path!r}")
    return [p for p in path.split("/") if p and p != "."]
