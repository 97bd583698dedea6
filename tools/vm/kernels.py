"""``python3 tools/vm/kernels.py build [iommufd|iommufd73|all] | debian | path [NAME]``: the lane's
kernels, built or fetched in advance (pyvfio/vm/kernels.py; ``pyvfio vm build`` does the same)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
sys.dont_write_bytecode = True

from pyvfio.vm.kernels import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
