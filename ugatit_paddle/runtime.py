"""CPU runtime defaults for Paddle, applied by the command-line tools before `import paddle`.

Paddle reads its threading and math-library settings from environment variables once, when it (or
MKL) is first loaded, so they must be set before `import paddle`. `configure_cpu()` sets only the
variables the user has not set, so anything exported in the shell wins:

- `OMP_NUM_THREADS`: the number of CPU cores this process may use (divided among the processes of a
  `paddle.distributed.launch` job on this machine). Paddle's own default is 1 thread.
- `MKL_DEBUG_CPU_TYPE=5` on AMD processors: makes Paddle's MKL (the GEMM behind every CPU convolution)
  take its AVX2 code path instead of the slow generic one it picks for non-Intel CPUs.
- `MALLOC_MMAP_THRESHOLD_` (32 MiB, glibc's maximum), `MALLOC_MMAP_MAX_=0` and `MALLOC_TRIM_THRESHOLD_`
  (1 GiB) with glibc: Paddle's CPU allocator takes every tensor from `malloc`; by default glibc serves
  large blocks with fresh `mmap` pages and returns them on free, so each activation-sized op pays page
  faults on memory it just released. Keeping freed blocks in the heap makes memory-bound ops
  (elementwise, their gradients) 2-6x faster, at the price of a process that holds on to its peak
  memory. The threshold alone still leaves blocks of 32 MiB and more (the discriminators' largest
  weights, the full model's MLP) to `mmap`; `MALLOC_MMAP_MAX_=0` keeps those in the heap as well.
  glibc reads these variables when the process starts, so `configure_allocator` also applies them to the
  running process with `mallopt`. These apply only where Paddle computes on the CPU: on a GPU the host process
  would keep its largest peak for good (a checkpoint's numpy payload, 7.6 GB for the full model) for no gain.
  `configure_allocator` therefore runs after `import paddle`, when Paddle's place is known (no guess from
  package names or /dev/nvidia*, which cannot tell a CPU-only job on a GPU machine or a wheel that sees no card).

Measured on a 2-core AMD EPYC (light model, ch 32, img 128, batch 1, one process per setting, interleaved,
medians of 3): a training iteration 1.5x faster with `MKL_DEBUG_CPU_TYPE=5`, then 1.34x faster again with
the malloc threshold settings (peak RSS +5 to 10 %), and 1.4x again with `MALLOC_MMAP_MAX_=0` (5.5-5.8 s
against 3.7-4.3 s; peak RSS +13 %). Rerun the comparison with `tools/benchmark.py`, exporting a variable to
another value (e.g. `MALLOC_MMAP_MAX_=65536`, glibc's default) for one of the runs.

Paddle prints "WARNING: OMP_NUM_THREADS set to N, not 1 ... PLEASE USE OMP_NUM_THREADS WISELY" at import when
N > 1. It concerns data-parallel jobs, where each process should take fewer threads (which `configure_cpu`
already does); `import_paddle()` imports Paddle without that notice in a single process and leaves it (and
every other message) alone in a `paddle.distributed.launch` job. Use `configure_cpu(dry_run=True)` and
`allocator_defaults()` to see what would be set. Importing this module does not import paddle.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import platform
import sys
import warnings
from collections.abc import MutableMapping
from pathlib import Path

AMD_VENDOR = "AuthenticAMD"
GLIBC_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**30)}
# mallopt's parameter numbers (malloc.h): M_MMAP_THRESHOLD, M_MMAP_MAX, M_TRIM_THRESHOLD
MALLOPT_PARAMS = {"MALLOC_MMAP_THRESHOLD_": -3, "MALLOC_MMAP_MAX_": -4, "MALLOC_TRIM_THRESHOLD_": -1}


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask; the machine's count where there is none)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def cpu_vendor(cpuinfo: str | Path = "/proc/cpuinfo") -> str | None:
    """The `vendor_id` of the first CPU ("GenuineIntel", "AuthenticAMD", ...), or None if unknown."""
    try:
        text = Path(cpuinfo).read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "vendor_id":
            return value.strip()
    return None


def local_processes(environ: MutableMapping[str, str]) -> int:
    """Processes of a `paddle.distributed.launch` job sharing this machine (1 outside such a job)."""
    for name in ("PADDLE_LOCAL_SIZE", "PADDLE_TRAINERS_NUM"):
        value = environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def uses_glibc() -> bool:
    """True where the C library is glibc (whose malloc reads the MALLOC_*_ variables)."""
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def cpu_defaults(environ: MutableMapping[str, str] | None = None, cores: int | None = None,
                 vendor: str | None = None) -> dict[str, str]:
    """The environment variables `configure_cpu` would set (those not already in `environ`)."""
    environ = os.environ if environ is None else environ
    cores = usable_cores() if cores is None else cores
    vendor = cpu_vendor() if vendor is None else vendor
    wanted = {"OMP_NUM_THREADS": str(max(1, cores // local_processes(environ)))}
    if vendor == AMD_VENDOR:
        wanted["MKL_DEBUG_CPU_TYPE"] = "5"
    return {k: v for k, v in wanted.items() if k not in environ}


def allocator_defaults(environ: MutableMapping[str, str] | None = None, on_cpu: bool = True,
                       glibc: bool | None = None) -> dict[str, str]:
    """The `MALLOC_*_` variables `configure_allocator` would set (those not in `environ`): with glibc, and only
    when Paddle computes on the CPU (`on_cpu`)."""
    environ = os.environ if environ is None else environ
    glibc = uses_glibc() if glibc is None else glibc
    if not (glibc and on_cpu):
        return {}
    return {k: v for k, v in GLIBC_MALLOC.items() if k not in environ}


def configure_cpu(environ: MutableMapping[str, str] | None = None, dry_run: bool = False) -> dict[str, str]:
    """Set the thread and MKL defaults above in `environ` (default `os.environ`) where unset; returns what it set
    (the allocator settings wait for `configure_allocator`, after `import paddle`).

    Call it before the first `import paddle` of the process; afterwards it still sets the variables
    (for child processes) but warns that this process keeps the settings it started with. It also hides
    the "No ccache found" notice that importing Paddle prints (it concerns compiling C++ extensions only).
    """
    warnings.filterwarnings("ignore", message="No ccache found")
    environ = os.environ if environ is None else environ
    values = cpu_defaults(environ)
    if dry_run:
        return values
    if values and "paddle" in sys.modules and environ is os.environ:
        print(f"warning: paddle was imported before ugatit_paddle.runtime.configure_cpu(); "
              f"{', '.join(values)} take effect in child processes only", file=sys.stderr)
    environ.update(values)
    return values


def paddle_on_cpu() -> bool:
    """True when Paddle's current place is the CPU (imports Paddle)."""
    import paddle

    return paddle.device.get_device() == "cpu"


def configure_allocator(environ: MutableMapping[str, str] | None = None, on_cpu: bool | None = None) -> dict[str, str]:
    """Set glibc's allocator settings (see the module docstring) where unset, in `environ` (default `os.environ`,
    for child processes) and, for `os.environ`, in this process by `mallopt`; only when Paddle computes on the
    CPU (`on_cpu`, default: `paddle_on_cpu()`, so call it after `import paddle`). Returns what it set."""
    environ = os.environ if environ is None else environ
    values = allocator_defaults(environ, paddle_on_cpu() if on_cpu is None else on_cpu)
    environ.update(values)
    if environ is os.environ:
        apply_malloc_settings(values)
    return values


def apply_malloc_settings(values: dict[str, str]) -> None:
    """Apply `MALLOC_*_` values to this process's glibc malloc (which read the environment at start-up)."""
    if not values or not uses_glibc():
        return
    try:
        libc = ctypes.CDLL(None)
        for name, value in values.items():
            libc.mallopt(MALLOPT_PARAMS[name], int(value))
    except (OSError, AttributeError):  # not a glibc we can reach: the environment variables still apply to children
        pass


OMP_NOTICE = ("WARNING: OMP_NUM_THREADS set to", "PLEASE USE OMP_NUM_THREADS WISELY")


class _DropLines(io.TextIOBase):
    """A text stream that writes to `target` every line except those starting with one of `prefixes`."""

    def __init__(self, target: io.TextIOBase, prefixes: tuple[str, ...]) -> None:
        self.target, self.prefixes, self.pending = target, prefixes, ""

    def write(self, text: str) -> int:
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        for line in lines:
            if not line.startswith(self.prefixes):
                self.target.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        if self.pending and not self.pending.startswith(self.prefixes):
            self.target.write(self.pending)
        self.pending = ""
        self.target.flush()


def import_paddle(environ: MutableMapping[str, str] | None = None) -> None:
    """`import paddle`, without its OMP_NUM_THREADS notice when this process is not one of a data-parallel job
    (see the module docstring); other output of the import passes through."""
    environ = os.environ if environ is None else environ
    if "paddle" in sys.modules or local_processes(environ) > 1:
        import paddle  # noqa: F401
        return
    quiet = _DropLines(sys.stderr, OMP_NOTICE)
    with contextlib.redirect_stderr(quiet):
        import paddle  # noqa: F401,F811
    quiet.flush()
