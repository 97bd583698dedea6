"""pyvfio's benchmarks, installed: ``pyvfio bench`` on your own host and hardware.

    pyvfio bench [--quick] [--only PART]... [--device BDF] [--output FILE] [--json]

Without ``--device`` it measures what every Linux host can: the cost of one ioctl through each
layer (C loop, raw ``fcntl.ioctl``, pyvfio's wrapper), DMA map+unmap and register access on the
fake kernel, the fake's IOVA structures up to 10^6 mappings, and the fake edu's DMA throughput
(:mod:`pyvfio.bench.host`).  ``--device BDF`` adds the same calls on a real device bound to
vfio-pci, against C (:mod:`pyvfio.bench.device`).  Ratios within one run are the result; the
absolute numbers belong to the machine.  Not a test: nothing is asserted about the numbers.

Modules: :mod:`~pyvfio.bench.timing` (fastest-of-5 loops, tables, JSON), :mod:`~pyvfio.bench.cloop`
(the C loop, compiled at bench time from pyvfio's own struct declarations),
:mod:`~pyvfio.bench.ioctls`, :mod:`~pyvfio.bench.cases`, :mod:`~pyvfio.bench.scaling` (the
measurements), :mod:`~pyvfio.bench.command` (the subcommand).
"""
