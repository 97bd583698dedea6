"""IOMMU_OPTION of the fake iommufd (main.c:iommufd_option, ioas.c:iommufd_ioas_option).

``RLIMIT_MODE`` is global to the fd (object id 0); ``HUGE_PAGES`` belongs to one IOAS.
"""

from __future__ import annotations

import errno

from pyvfio import uapi
from pyvfio._ffi import C, CData
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.iommufd import IOASObj, IommufdCtx
from pyvfio.fake.memory import kerr
from pyvfio.fake.uaccess import IoctlArg


def IOMMU_OPTION(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802
    cmd = io.cmd
    if cmd.__reserved:
        raise kerr(errno.EOPNOTSUPP)
    if cmd.option_id == C.IOMMU_OPTION_RLIMIT_MODE:
        _option_rlimit_mode(ctx, cmd)
        return
    if cmd.option_id != C.IOMMU_OPTION_HUGE_PAGES:
        raise kerr(errno.EOPNOTSUPP)  # main.c:iommufd_option's switch, before any object lookup
    ioas = ctx.get_ioas(cmd.object_id)
    if cmd.op == C.IOMMU_OPTION_OP_GET:
        cmd.val64 = 0 if ioas.iopt.disable_large_pages else 1
    elif cmd.op == C.IOMMU_OPTION_OP_SET:
        set_huge_pages(ioas, cmd.val64)
    else:
        raise kerr(errno.EOPNOTSUPP)


def _option_rlimit_mode(ctx: IommufdCtx, cmd: CData) -> None:
    if cmd.object_id:
        raise kerr(errno.EOPNOTSUPP)
    if cmd.op == C.IOMMU_OPTION_OP_GET:
        cmd.val64 = int(ctx.account_mode_mm)
    elif cmd.op == C.IOMMU_OPTION_OP_SET:
        # CAP_SYS_RESOURCE is assumed: the fake runs as the test's (privileged) user
        if ctx.table.objects:
            raise kerr(errno.EBUSY)
        if cmd.val64 not in (0, 1):
            raise kerr(errno.EINVAL)
        ctx.account_mode_mm = bool(cmd.val64)
    else:
        raise kerr(errno.EOPNOTSUPP)


def set_huge_pages(ioas: IOASObj, val: int) -> None:
    iopt = ioas.iopt
    if val == 1:
        iopt.disable_large_pages = False
        iopt.update_alignment(iopt.domain_alignment)
    elif val == 0:
        if iopt.disable_large_pages:
            return
        if ioas.hwpts and len(iopt.areas):
            raise kerr(errno.EINVAL)  # io_pagetable.c:iopt_disable_large_pages
        iopt.disable_large_pages = True
        try:
            iopt.update_alignment(iopt.domain_alignment)
        except OSError:
            iopt.disable_large_pages = False
            raise
    else:
        raise kerr(errno.EINVAL)


OPS = (Op(uapi.IOMMU_OPTION, "iommufd", IOMMU_OPTION, Conv.SIZE, "struct iommu_option", "val64",
          since="6.2"),)
"""IOMMU_OPTION (main.c)."""
