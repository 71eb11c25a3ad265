"""The CPU demo (`run`: generate data, train a tiny model, measure the translation) and its procedural
dataset with the domain scorer (`dataset`)."""

from .run import DEFAULT_CONFIG, DemoError, DemoResult, run_demo

__all__ = ["DEFAULT_CONFIG", "DemoError", "DemoResult", "run_demo"]
