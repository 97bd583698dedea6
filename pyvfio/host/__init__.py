"""Host tooling: find PCI devices, judge IOMMU groups, bind safely, persist, check the host.

Every function takes the :class:`pyvfio.kernel.Kernel` (sysfs through it), so the whole package
runs on the fake kernel's sysfs as on the real one.  What sysfs does not show (mounts, swap,
routes, block-device signatures, memlock, modprobe) goes through :class:`hostos.HostOS`.
Modules: ``validate`` (name formats), ``discover``, ``pciids``, ``viability``, ``inuse``, ``bind``,
``persist``, ``doctor``, ``mdev``, ``sriov``, ``vfioinfo``, ``hostos``.
"""
