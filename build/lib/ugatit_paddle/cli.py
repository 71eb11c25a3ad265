"""What the command line tools in tools/ share: the config arguments, errors turned into a message and the
documented exit status, and the report of a weight conversion.

Exit status of every tool: 0 done, 1 the work failed (unreadable input, data, checkpoint, diverged training),
2 bad usage or configuration (argparse errors, `ConfigError`, ...), 130 interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .config import ConfigError, ModelConfig
from .formats.official import DEFAULT_LIGHT_IMG_SIZE

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

Errors = tuple[type[BaseException], ...]


def add_config_arguments(parser: argparse.ArgumentParser, override_example: str,
                         config_help: str = "YAML config (keys missing from it take the official defaults)",
                         default: str | None = None) -> None:
    """`-c/--config FILE` and the repeatable `-o/--override KEY=VALUE` (e.g. `override_example`)."""
    parser.add_argument("-c", "--config", default=default, help=config_help)
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a config value, e.g. -o {override_example} (repeatable)")


def add_conversion_arguments(parser: argparse.ArgumentParser, input_help: str,
                             output_help: str = ".pdparams file to write", input_name: str = "INPUT") -> None:
    """A converter's positional `input` (shown as `input_name`), `-o/--output FILE` and `--img-size` (needed for
    light models only)."""
    parser.add_argument("input", metavar=input_name, help=input_help)
    parser.add_argument("-o", "--output", required=True, help=output_help)
    parser.add_argument("--img-size", type=int, help="training image size (only needed for light models; "
                                                     f"default {DEFAULT_LIGHT_IMG_SIZE})")


def report_error(error: BaseException | str, status: int = EXIT_FAILED) -> int:
    """Print `error: ...` (`config error: ...` for a ConfigError) to stderr and return `status`."""
    prefix = "config error" if isinstance(error, ConfigError) else "error"
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        error = f"{error.strerror}: {error.filename}"  # not "[Errno 2] No such file or directory: 'x'"
    print(f"{prefix}: {error}", file=sys.stderr)
    return status


def run(work: Callable[[], int], failures: Errors = (), usage: Errors = ()) -> int:
    """`work()`'s exit status; an exception in `usage` (and any ConfigError) is reported with status 2, one in
    `failures` with 1, Ctrl-C with 130. Anything else is a bug and keeps its traceback."""
    try:
        return work()
    except (ConfigError, *usage) as e:
        return report_error(e, EXIT_USAGE)
    except failures as e:
        return report_error(e, EXIT_FAILED)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def architecture(args: ModelConfig) -> str:
    """One line naming the architecture a converter read from the weights."""
    return (f"light={args.light} ch={args.ch} n_res={args.n_res} img_size={args.img_size} "
            f"discriminator layers global={args.global_layers} local={args.local_layers}")


def print_conversion(description: str, notes: Sequence[str], output: str | Path) -> int:
    """A converter's report: the architecture, one `note:` line per note, the file written. Returns 0."""
    print(f"architecture: {description}")
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {output}")
    return EXIT_OK
