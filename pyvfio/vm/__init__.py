"""pyvfio's VM lane as an installed feature: real Linux kernels (6.12, 7.3) in QEMU for tests.

``pyvfio vm run [--profile P] [--qemu-device ARG] [--drive ID[:SIZE]] -- PYTEST ARGS`` runs the
tests of the current directory in a guest (:mod:`pyvfio.vm.cli`); pytest's
``--pyvfio-kernel=vm:PROFILE`` does the same from a pytest command line
(:mod:`pyvfio.vm.pytest_plugin`).  Kernels are built from Debian's ``linux-source`` packages and
cached under ``$XDG_CACHE_HOME/pyvfio/vm`` (:mod:`pyvfio.vm.kernels`); profiles are in
:mod:`pyvfio.vm.profiles`.  Host-side only: nothing here imports cffi.
"""
