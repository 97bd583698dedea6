"""The fake kernel: a pure-Python model of Linux VFIO and iommufd behind the Kernel seam."""
