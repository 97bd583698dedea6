"""QEMU command line of the VM lane, and running it under a hard timeout.

TCG only: on the reference host /dev/kvm is kvm-pvm, which cannot run these kernels
(vm-lane.md, "Two facts").  Device layout (fixed addresses, so BDFs are stable)::

    00:01.0  edu                         alone in its IOMMU group
    00:02.0  pcie-root-port  (chassis 1)
    01:00.0    pcie-pci-bridge
    02:01.0      edu                     \\ one IOMMU group (DMA aliases of the bridge)
    02:02.0      edu                     /
    then the profile's devices (fixed addresses, see profiles.py), the two virtio-9p-pci devices
    and any --qemu-device, on free root-bus slots.

Knobs for experiments (environment): PYVFIO_VM_SMP (default 1), PYVFIO_VM_MEMORY (1G),
PYVFIO_VM_CPU (max), PYVFIO_VM_BIOS (qboot if installed, else ``seabios``).
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

QEMU = "qemu-system-x86_64"
MEMORY = os.environ.get("PYVFIO_VM_MEMORY", "1G")
# one vCPU: pytest in the guest ran ~20 % faster than with two under TCG on the 2-core host
SMP = os.environ.get("PYVFIO_VM_SMP", "1")
CPU = os.environ.get("PYVFIO_VM_CPU", "max")
# qboot boots -kernel ~1 s faster than SeaBIOS; PYVFIO_VM_BIOS=seabios selects QEMU's default
_QBOOT = "/usr/share/qemu/qboot.rom"
BIOS = os.environ.get("PYVFIO_VM_BIOS") or (_QBOOT if os.path.exists(_QBOOT) else "seabios")

EDU_LAYOUT = [
    "-device",
    "edu,bus=pcie.0,addr=0x1",
    "-device",
    "pcie-root-port,id=pyvfio_rp,bus=pcie.0,chassis=1,addr=0x2",
    "-device",
    "pcie-pci-bridge,id=pyvfio_br,bus=pyvfio_rp,addr=0x0",
    "-device",
    "edu,bus=pyvfio_br,addr=0x1",
    "-device",
    "edu,bus=pyvfio_br,addr=0x2",
]


def _opt(value: str | Path) -> str:
    """Escape a value for a QEMU option list (a comma is written as two)."""
    return str(value).replace(",", ",,")


def command(
    kernel: Path,
    initrd: Path,
    append: str,
    results: Path,
    *,
    viommu: str | None,
    profile_devices: Sequence[str] = (),
    extra_devices: Sequence[str] = (),
    drives: Sequence[str] = (),  # -drive arguments (drives.py)
    interactive: bool = False,
) -> list[str]:
    """The QEMU command line; ``viommu`` is intel-iommu's option string (None: no vIOMMU).

    ``profile_devices`` have fixed addresses and come before the 9p devices (which then take
    the free root-bus slots); ``extra_devices`` (--qemu-device) come after them.
    """
    machine = "q35,kernel-irqchip=split" if viommu else "q35"
    cmd = [
        QEMU,
        "-accel",
        "tcg,thread=multi",
        "-cpu",
        CPU,
        "-machine",
        machine,
        "-m",
        MEMORY,
        "-smp",
        SMP,
        "-nographic",
        "-no-reboot",
        "-nodefaults",
        "-serial",
        "mon:stdio" if interactive else "stdio",
    ]
    if BIOS != "seabios":
        cmd += ["-bios", BIOS]
    if viommu:
        cmd += ["-device", f"intel-iommu,{viommu}"]
    cmd += EDU_LAYOUT
    cmd += list(drives)
    for dev in profile_devices:
        cmd += ["-device", dev]
    cmd += [
        "-virtfs",
        "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
    ]
    cmd += [
        "-virtfs",
        f"local,path={_opt(results)},mount_tag=results,security_model=none,multidevs=remap",
    ]
    for dev in extra_devices:
        cmd += ["-device", dev]
    cmd += ["-kernel", str(kernel), "-initrd", str(initrd), "-append", append]
    return cmd


@dataclass
class Outcome:
    returncode: int | None  # QEMU's own exit status (None: killed on timeout)
    timed_out: bool
    seconds: float
    marks: dict[str, float] = field(default_factory=dict)  # console marker -> seconds after start


READY, SESSION, EXIT = "pyvfio-vm: READY", "test session starts", "pyvfio-vm: EXIT"
MARKERS = (READY, SESSION, EXIT)
# SeaBIOS resets and clears the terminal on its serial console; keep the host's terminal intact
_TERMINAL_RESETS = re.compile(rb"\x1bc|\x1b\[\?7l|\x1b\[2J")


class _ConsoleFilter:
    """Drop SeaBIOS's terminal resets, also when the serial line splits them across reads."""

    def __init__(self) -> None:
        self.held = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self.held + chunk
        esc = data.rfind(b"\x1b")
        if esc >= 0 and len(data) - esc < 6:
            data, self.held = data[:esc], data[esc:]
        else:
            self.held = b""
        return _TERMINAL_RESETS.sub(b"", data)

    def flush(self) -> bytes:
        data, self.held = self.held, b""
        return data


class _Stdout:
    """The host's stdout, shared by parallel guests: with a prefix, whole lines only."""

    lock = threading.Lock()

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.encode()
        self.partial = b""

    def write(self, data: bytes, final: bool = False) -> None:
        out = sys.stdout.buffer
        if not self.prefix:
            with self.lock:
                out.write(data)
                out.flush()
            return
        lines = (self.partial + data).split(b"\n")
        self.partial = b"" if final else lines.pop()
        text = b"".join(
            self.prefix + line.rstrip(b"\r") + b"\n" for line in lines if line or not final
        )
        with self.lock:
            out.write(text)
            out.flush()


def say(text: str, prefix: str = "") -> None:
    """Print a line of the lane itself (whole, even while parallel guests print)."""
    _Stdout(prefix).write(text.encode() + b"\n")


_running: set[subprocess.Popen[bytes]] = set()


def kill_all() -> None:
    """Stop every QEMU this process started (on Ctrl-C while guests run in threads)."""
    for proc in list(_running):
        _kill(proc)


class _Console:
    """Where a streaming guest's console goes: stdout (filtered), ``log`` and the marker times."""

    def __init__(self, log: Path | None, prefix: str, start: float) -> None:
        self.out = _Stdout(prefix)
        self.log = open(log, "wb") if log else None  # noqa: SIM115  (closed by close())
        self.filter = _ConsoleFilter()
        self.start = start
        self.tail = b""
        self.marks: dict[str, float] = {}

    def feed(self, chunk: bytes, final: bool = False) -> None:
        chunk = self.filter.flush() if final else self.filter.feed(chunk)
        self.out.write(chunk, final)
        if self.log:
            self.log.write(chunk)
        self.tail = (self.tail + chunk)[-4096:]
        for marker in MARKERS:
            if marker not in self.marks and marker.encode() in self.tail:
                self.marks[marker] = time.monotonic() - self.start

    def close(self) -> None:
        if self.log:
            self.log.close()


def _pump(proc: subprocess.Popen[bytes], deadline: float | None, console: _Console) -> bool:
    """Copy QEMU's output to ``console`` until it closes (False) or ``deadline`` passes (True)."""
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                return True
            if not sel.select(wait):
                continue
            chunk = proc.stdout.read(65536)
            if chunk is None:  # spurious wakeup of the non-blocking pipe
                continue
            if not chunk:
                console.feed(b"", final=True)
                return False
            console.feed(chunk)


def run(
    cmd: list[str], timeout: float, log: Path | None, interactive: bool, prefix: str = ""
) -> Outcome:
    """Run QEMU; stream its console to stdout (and ``log``); kill it after ``timeout`` s (0: never).

    With ``prefix`` (guests running in parallel) every console line is printed with it.
    """
    start = time.monotonic()
    if interactive:  # the terminal belongs to the guest; Ctrl-A X quits QEMU
        return _run_interactive(cmd, timeout, start)
    console = _Console(log, prefix, start)
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    _running.add(proc)
    try:
        timed_out = _pump(proc, start + timeout if timeout > 0 else None, console)
        if not timed_out:
            proc.wait(timeout=30)  # console closed: QEMU is exiting
    except subprocess.TimeoutExpired:
        pass
    finally:  # also on Ctrl-C / SIGTERM
        _kill(proc)
        _running.discard(proc)
        console.close()
    return Outcome(
        None if timed_out else proc.returncode, timed_out, time.monotonic() - start, console.marks
    )


def _run_interactive(cmd: list[str], timeout: float, start: float) -> Outcome:
    proc = subprocess.Popen(cmd)
    _running.add(proc)
    try:
        proc.wait(timeout=timeout if timeout > 0 else None)
        return Outcome(proc.returncode, False, time.monotonic() - start)
    except subprocess.TimeoutExpired:
        return Outcome(None, True, time.monotonic() - start)
    finally:
        _kill(proc)
        _running.discard(proc)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
