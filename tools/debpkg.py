"""Download Debian packages of another suite without touching the host's apt state.

Moved to :mod:`pyvfio.vm.debpkg` (the VM lane is part of the installed package); this shim keeps
``python3 tools/debpkg.py SUITE PACKAGE ...`` and the tools that ``import debpkg`` working.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyvfio.vm.debpkg import (
    DebpkgError,
    apt_state,
    cache_root,
    candidate,
    depends,
    download,
    extract,
    main,
    system_mirror,
)

__all__ = ["DebpkgError", "apt_state", "cache_root", "candidate", "depends", "download",
           "extract", "main", "system_mirror"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
