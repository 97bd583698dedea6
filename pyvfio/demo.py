"""``pyvfio demo``: the edu driver, step by step with timings, on the fake kernel or a real device.

Without ``--device`` it runs on pyvfio's embedded fake kernel (a host laid out like the VM lane's
guest): no hardware, no root.  With ``--device BDF`` it drives a real edu bound to vfio-pci.

JSON (``--json``, schema ``pyvfio.demo/1``): kernel (fake|real), device, mode, mode_reason,
steps: [{name, ok, ms, result, error?, hint?}]; ``ok`` is false if any step failed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyvfio.commands import EXIT_FAILED, EXIT_OK, Context, Output
from pyvfio.errors import DriverError, NotBoundError
from pyvfio.host import discover, validate, viability
from pyvfio.kernel import Kernel
from pyvfio.opener import IOMMU_MODES, MODES

if TYPE_CHECKING:
    from pyvfio.edu import EduDriver
# the edu driver (and with it cffi and the object API) loads when a demo runs, not when the
# `pyvfio` command builds its parser: every other subcommand starts without it


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to its subparser."""
    parser.add_argument("--driver", choices=["edu", "nvme"], default="edu",
                        help="which driver to run (default edu; nvme: pyvfio.nvme on QEMU's "
                             "nvme model, or --device)")
    parser.add_argument("--device", metavar="BDF",
                        help="a real edu bound to vfio-pci (default: the embedded fake kernel)")
    parser.add_argument("--mode", choices=MODES, default="auto",
                        help="IOMMU mode (default auto: iommufd if available); "
                        "legacy, compat or exactly " + ", ".join(IOMMU_MODES))
    parser.add_argument("--timeout", type=seconds_arg, default=5.0,
                        help="seconds to wait for each interrupt (default 5; at most a week)")


def seconds_arg(text: str) -> float:
    """argparse ``type=`` of a time limit: finite, above 0, at most a week."""
    try:
        return validate.seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def vfio_device(kernel: Kernel, bdf: str) -> str:
    """Return the canonical ``bdf`` of an existing device on a VFIO driver.

    Raises:
        ValueError: not a PCI address.
        FileNotFoundError: no such device.
        NotBoundError: the device is not on vfio-pci (or a variant).
    """
    bdf = discover.require(kernel, bdf)
    driver = discover.driver_of(kernel, bdf)
    if driver is None or not viability.is_vfio_driver(kernel, driver):
        raise NotBoundError(f"{bdf} is bound to {driver or 'no driver'}, not to vfio-pci: "
                            f"run 'pyvfio bind {bdf}' first")
    return bdf


class Run:
    """The demo's step recorder: each step's name, result or error, and time."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def step(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        entry: dict[str, Any] = {"name": name, "ok": True}
        try:
            result = fn()
        except DriverError as exc:
            entry.update(ok=False, error=str(exc), hint=exc.hint)
            raise
        finally:
            entry["ms"] = round((time.perf_counter() - t0) * 1000, 3)
            self.steps.append(entry)
        entry["result"] = result if isinstance(result, (int, str, bool)) else repr(result)
        return result

    def verify(self, got: bytes, want: bytes) -> None:
        """The step ``verify round trip``: ``got`` must be ``want``."""
        def same() -> str:
            if got != want:
                raise DriverError("verify", "the data came back different")
            return "identical"

        self.step("verify round trip", same)

    def drive(self, data: dict[str, Any], name: str, start: Callable[[], Any],
              describe: Callable[[Any], str], exercise: Callable[[Run, Any], None],
              close_name: str = "close") -> bool:
        """Open and start a driver (step ``name``), exercise it, close it; fill ``data``'s mode
        and reason; return False once a step failed (the driver closed all the same)."""
        try:
            driver = self.step(name, start)
            self.steps[-1]["result"] = describe(driver)
            data["mode"], data["mode_reason"] = driver.mode, driver.device.mode_reason
            try:
                exercise(self, driver)
            except BaseException:
                driver.close()
                raise
            self.step(close_name, driver.close)
        except DriverError:
            return False
        return True


def _exercise(run: Run, edu: EduDriver) -> None:
    from pyvfio.edu import DMA_MAX  # noqa: PLC0415 - see the imports

    pattern = bytes(i * 7 % 251 for i in range(DMA_MAX))
    ident = run.step("identify", edu.identify)
    run.steps[-1]["result"] = f"edu {ident.major}.{ident.minor} (ident {ident.raw:#010x})"
    run.step("liveness check", edu.check_liveness)
    run.step("factorial 10! (completion interrupt)", lambda: edu.factorial(10))
    run.step("raise + acknowledge interrupt", lambda: f"{edu.raise_irq(0x1000):#x}")
    run.step(f"DMA {DMA_MAX} bytes RAM -> device", lambda: edu.dma_to_device(pattern))
    back = run.step(f"DMA {DMA_MAX} bytes device -> RAM", lambda: edu.dma_from_device(DMA_MAX))
    run.steps[-1]["result"] = f"{len(back)} bytes"
    run.verify(back, pattern)


def run_demo(kernel: Kernel, bdf: str, mode: str, timeout: float) -> tuple[bool, dict[str, Any]]:
    """Run the demo on ``bdf``; return (ok, JSON data)."""
    from pyvfio.edu import EduDriver  # noqa: PLC0415 - see the imports

    run = Run()
    data: dict[str, Any] = {"device": bdf, "mode": None, "mode_reason": None, "steps": run.steps}
    ok = run.drive(data, f"open {bdf} ({mode})",
                   lambda: EduDriver.open(bdf, mode, kernel=kernel, timeout=timeout),
                   lambda edu: f"{edu.mode} mode, DMA buffer at IOVA {edu.mapping.iova:#x}",
                   _exercise)
    return ok, data


def cmd_demo(ctx: Context, args: argparse.Namespace) -> Output:
    """The ``pyvfio demo`` handler."""
    nvme = getattr(args, "driver", "edu") == "nvme"
    if args.device:
        kernel, bdf, where = ctx.kernel, vfio_device(ctx.kernel, args.device), "real"
    else:
        from pyvfio.fake import standard_host  # noqa: PLC0415 - only the fake demo needs it

        kernel = standard_host(iommufd=True)
        if nvme:
            from pyvfio.fake.nvme import add_nvme  # noqa: PLC0415

            add_nvme(kernel)
        bdf, where = str(kernel.labels["nvme" if nvme else "edu"]), "fake"
    if nvme:
        from pyvfio.nvme.demo import run_demo as run_nvme  # noqa: PLC0415 - lazy, as the fake

        ok, data = run_nvme(kernel, bdf, args.mode, args.timeout)
    else:
        ok, data = run_demo(kernel, bdf, args.mode, args.timeout)
    data = {"kernel": where, **data}
    return Output(data, _lines(data, ok), EXIT_OK if ok else EXIT_FAILED)


def _lines(data: dict[str, Any], ok: bool) -> list[str]:
    where = "pyvfio's fake kernel" if data["kernel"] == "fake" else "the real kernel"
    lines = [f"{data.get('driver', 'edu')} driver demo on {data['device']}, {where}, "
             f"mode {data['mode'] or '?'}"]
    if data["mode_reason"]:
        lines.append(f"  ({data['mode_reason']})")
    for s in data["steps"]:
        mark = "ok  " if s["ok"] else "FAIL"
        lines.append(f"  {mark} {s['ms']:9.3f} ms  {s['name']}"
                     + (f": {s['result']}" if s.get("result") not in (None, "None") else ""))
        if not s["ok"]:
            lines.append(f"       {s['error']}")
            if s.get("hint"):
                lines.append(f"       hint: {s['hint']}")
    total = sum(s["ms"] for s in data["steps"])
    lines.append(f"{'all steps passed' if ok else 'FAILED'} in {total:.1f} ms")
    return lines
