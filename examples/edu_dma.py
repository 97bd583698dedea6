"""A complete userspace driver for QEMU's edu device, in a dozen lines of pyvfio.

The driver itself is :mod:`pyvfio.edu` (public API only: register map, DMA memory, IOVA mapping,
MSI on an eventfd); ``pyvfio demo`` runs it step by step with timings.  This example shows the
smallest complete use: open, compute, DMA a pattern to the device and back, close.

    python examples/edu_dma.py                          # on pyvfio's fake kernel
    python examples/edu_dma.py --device 0000:00:01.0    # a real edu bound to vfio-pci
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

try:
    import pyvfio
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyvfio
from pyvfio.edu import DMA_MAX, EduDriver
from pyvfio.fake import standard_host

COUNT = DMA_MAX  # QEMU 7.2's edu aborts on a full 4096-byte transfer


def exercise(device: pyvfio.Device) -> bytes:
    """Drive an already opened edu: DMA a pattern to the device and back; return what came back."""
    with EduDriver(device) as edu:
        edu.dma_to_device(bytes(i * 7 % 251 for i in range(COUNT)))
        return edu.dma_from_device(COUNT)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; 0 if the DMA round trip worked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", metavar="BDF", help="a real edu bound to vfio-pci")
    parser.add_argument("--mode", default="auto", choices=pyvfio.MODES)
    args = parser.parse_args(argv)
    kernel = None if args.device else standard_host(iommufd=True)  # None: the real kernel
    bdf = args.device or "0000:00:01.0"
    sent = bytes(i * 7 % 251 for i in range(DMA_MAX))
    with EduDriver.open(bdf, args.mode, kernel=kernel) as edu:
        print(f"edu {bdf} ({edu.mode}): 10! = {edu.factorial(10)}")
        edu.dma_to_device(sent)
        ok = edu.dma_from_device(len(sent)) == sent
    print(f"edu {bdf}: {len(sent)} bytes to the device and back: {'ok' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
