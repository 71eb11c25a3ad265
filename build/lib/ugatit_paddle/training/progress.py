"""Training progress on the console, chosen in one place (`make_progress`).

* a terminal or a notebook: a tqdm progress bar (`tqdm.auto`: a widget in Jupyter when ipywidgets is there);
* anything else (`python tools/train.py ... > train.log 2>&1`, a background job, a pipe): one plain line every
  `log_every` iterations and at the last one, readable with `tail -f` and `grep`:

      iter 1200/100000 (1.2%)  D/total 1.2345  G/total 5.6789  0.512 s/it  ETA 14:03:20

  where s/it is the mean over the lines' interval and the ETA extrapolates the mean since the reporter started.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TextIO

DEFAULT_SHOWN = ("D/total", "G/total")  # the loss terms a progress line shows


class ProgressReporter(Protocol):
    def update(self, iteration: int, losses: Mapping[str, float]) -> None:
        """`iteration` (1-based, completed) has finished with these loss terms."""

    def close(self) -> None:
        """The loop has ended (also on errors)."""


def in_notebook() -> bool:
    """True inside a Jupyter (IPython kernel) session."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except AttributeError:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def format_duration(seconds: float) -> str:
    """12345.6 -> '3:25:45'; over a day '2d 03:25:45'."""
    seconds = max(0, int(round(seconds)))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days}d {hours:02d}:{minutes:02d}:{secs:02d}" if days else clock


def _losses_text(losses: Mapping[str, float], shown: Sequence[str] | None) -> str:
    keys = list(losses) if shown is None else [k for k in shown if k in losses]
    return "  ".join(f"{k} {losses[k]:.4f}" for k in keys)


class LineProgress:
    """Plain progress lines every `log_every` iterations (and at `end`), flushed at once."""

    def __init__(self, start: int, end: int, log_every: int, stream: TextIO,
                 shown: Sequence[str] | None = DEFAULT_SHOWN, clock: Any = time.perf_counter) -> None:
        self.start, self.end, self.log_every, self.stream, self.shown = start, end, log_every, stream, shown
        self._clock = clock
        self._t0 = self._last_time = clock()
        self._last_iteration = start

    def update(self, iteration: int, losses: Mapping[str, float]) -> None:
        if iteration % self.log_every != 0 and iteration != self.end:
            return
        now = self._clock()
        done = iteration - self._last_iteration
        interval = (now - self._last_time) / done if done > 0 else 0.0
        mean = (now - self._t0) / max(1, iteration - self.start)
        self._last_time, self._last_iteration = now, iteration
        percent = 100.0 * iteration / self.end if self.end else 100.0
        parts = [f"iter {iteration}/{self.end} ({percent:.1f}%)", _losses_text(losses, self.shown),
                 f"{interval:.3f} s/it", f"ETA {format_duration(mean * (self.end - iteration))}"]
        self.stream.write("  ".join(p for p in parts if p) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class BarProgress:
    """A tqdm bar (the notebook flavour through `tqdm.auto` when `notebook`)."""

    def __init__(self, start: int, end: int, stream: TextIO | None, notebook: bool,
                 shown: Sequence[str] | None = DEFAULT_SHOWN) -> None:
        if notebook:
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
        self.shown = shown
        self.bar = tqdm(total=end, initial=start, unit="it", dynamic_ncols=True, mininterval=1.0, smoothing=0.05,
                        file=stream)

    def update(self, iteration: int, losses: Mapping[str, float]) -> None:
        self.bar.set_postfix_str(_losses_text(losses, self.shown).replace("/total", ""), refresh=False)
        self.bar.update(iteration - self.bar.n)

    def close(self) -> None:
        self.bar.close()


class NoProgress:
    """Reports nothing (data-parallel ranks other than 0)."""

    def update(self, iteration: int, losses: Mapping[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


def make_progress(start: int, end: int, log_every: int, stream: TextIO | None = None, enabled: bool = True,
                  shown: Sequence[str] | None = DEFAULT_SHOWN) -> ProgressReporter:
    """The progress reporter for a loop from iteration `start` (completed) to `end`: a bar on a terminal or in a
    notebook, plain lines every `log_every` iterations otherwise; `stream` defaults to sys.stderr."""
    if not enabled:
        return NoProgress()
    if in_notebook():
        return BarProgress(start, end, stream, notebook=True, shown=shown)
    stream = sys.stderr if stream is None else stream
    if _is_terminal(stream):
        return BarProgress(start, end, stream, notebook=False, shown=shown)
    return LineProgress(start, end, log_every, stream, shown)
