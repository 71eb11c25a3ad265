"""Progress reporting: plain lines when stderr is not a terminal, a tqdm bar when it is."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import tqdm.auto

from ugatit_paddle.training.progress import BarProgress, LineProgress, format_duration, make_progress
from ugatit_paddle.training import progress

ROOT = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_every_log_every_and_at_the_end():
    stream, clock = io.StringIO(), FakeClock()
    reporter = LineProgress(start=10, end=25, log_every=5, stream=stream, clock=clock)
    for it in range(11, 26):
        clock.now += 0.5
        reporter.update(it, {"D/total": 1.0 + it, "G/total": 2.0, "G/cycle_A": 3.0})
    reporter.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert [line.split()[1] for line in lines] == ["15/25", "20/25", "25/25"]
    assert lines[0] == "iter 15/25 (60.0%)  D/total 16.0000  G/total 2.0000  0.500 s/it  ETA 0:00:05"
    assert lines[-1].endswith("ETA 0:00:00")


def test_make_progress_chooses_by_terminal():
    assert isinstance(make_progress(0, 10, 2, stream=io.StringIO()), LineProgress)
    terminal = Terminal()
    bar = make_progress(0, 10, 2, stream=terminal)
    assert isinstance(bar, BarProgress)
    for it in range(1, 11):
        bar.update(it, {"D/total": 1.0, "G/total": 2.0})
    bar.close()
    assert "10/10" in terminal.getvalue() and "\r" in terminal.getvalue()


def test_redirected_stderr_gets_lines(tmp_path):
    script = textwrap.dedent("""
        import sys
        from ugatit_paddle.training.progress import make_progress
        p = make_progress(0, 6, 3)
        for it in range(1, 7):
            p.update(it, {"D/total": 0.5, "G/total": 1.5})
        p.close()
    """)
    log = tmp_path / "train.log"
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-c", script], stdout=f, stderr=subprocess.STDOUT, check=True)
    lines = log.read_text().splitlines()
    assert len(lines) == 2 and lines[0].startswith("iter 3/6 (50.0%)  D/total 0.5000  G/total 1.5000")


def test_format_duration():
    assert format_duration(12345.6) == "3:25:46"
    assert format_duration(2 * 86400 + 61) == "2d 00:01:01"


def test_notebook_gets_the_auto_bar(monkeypatch):
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    reporter = progress.make_progress(0, 4, 2, stream=io.StringIO())  # even with a non-terminal stream
    assert isinstance(reporter, BarProgress) and isinstance(reporter.bar, tqdm.auto.tqdm)
    reporter.close()
