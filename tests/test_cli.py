"""The tools' shared command line pieces (ugatit_paddle.cli): exit status per kind of error, messages."""

from __future__ import annotations

import argparse

import pytest

from ugatit_paddle import cli
from ugatit_paddle.config import ConfigError, ModelConfig


class _Failed(Exception):
    pass


class _Usage(Exception):
    pass


def _raise(error: BaseException):
    def work() -> int:
        raise error
    return work


def test_run_maps_errors_to_the_documented_exit_status(capsys):
    assert cli.run(lambda: 0) == 0
    assert cli.run(_raise(ConfigError("bad key")), failures=(_Failed,)) == 2
    assert capsys.readouterr().err == "config error: bad key\n"
    assert cli.run(_raise(_Usage("in use")), failures=(_Failed,), usage=(_Usage,)) == 2
    assert cli.run(_raise(_Failed("no data")), failures=(_Failed,)) == 1
    assert capsys.readouterr().err == "error: in use\nerror: no data\n"
    assert cli.run(_raise(KeyboardInterrupt())) == 130
    with pytest.raises(RuntimeError):  # not a documented failure: a bug keeps its traceback
        cli.run(_raise(RuntimeError("bug")), failures=(_Failed,))


def test_file_errors_name_the_file_without_the_errno(capsys):
    assert cli.run(lambda: open("/nonexistent/x.png", "rb") and 0, failures=(OSError,)) == 1
    assert capsys.readouterr().err == "error: No such file or directory: /nonexistent/x.png\n"


def test_config_arguments_and_conversion_report(capsys):
    parser = argparse.ArgumentParser()
    cli.add_config_arguments(parser, "train.lr=2e-4")
    a = parser.parse_args(["-c", "x.yaml", "-o", "a.b=1", "-o", "c.d=2"])
    assert (a.config, a.override) == ("x.yaml", ["a.b=1", "c.d=2"])
    args = ModelConfig(img_size=96, ch=8, n_res=2, light=True)
    assert cli.print_conversion(cli.architecture(args), ["a note"], "out.pdparams") == 0
    assert capsys.readouterr().out == ("architecture: light=True ch=8 n_res=2 img_size=96 discriminator layers "
                                       "global=7 local=5\nnote: a note\nwrote out.pdparams\n")
