"""Official checkpoint <-> project conversion: exact round trips, inference of the architecture, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ugatit_paddle.formats import checkpoint
from ugatit_paddle.formats.official import (
    LINEAR_WEIGHTS, ConversionError, convert_file, export_official_file, from_official, to_official,
)
from ugatit_paddle.config import ModelConfig
from ugatit_paddle.formats.torch_pickle import load_torch
from ugatit_paddle.formats.torch_writer import save_torch
from ugatit_paddle.models import NETWORKS, build_networks

ROOT = Path(__file__).resolve().parents[1]


def _paddle_states(args: ModelConfig) -> dict[str, dict[str, np.ndarray]]:
    return {n: {k: v.numpy() for k, v in net.state_dict().items()} for n, net in build_networks(args).items()}


@pytest.mark.parametrize("light", [True, False])
def test_paddle_torch_paddle_round_trip_is_exact(light):
    args = ModelConfig(img_size=128, ch=8, n_res=2, light=light)
    states = _paddle_states(args)
    official = to_official(states)
    assert official["genA2B"]["FC.2.weight"].shape == states["genA2B"]["FC.2.weight"].T.shape
    assert official["disGA"]["gap_fc.weight_orig"].shape == (1, 8 * 2**5)  # torch Linear layout [out, in]
    inferred, back, notes = from_official(official, img_size=128)
    assert inferred == args
    for name in NETWORKS:
        assert back[name].keys() == states[name].keys()
        for key, value in states[name].items():
            assert np.array_equal(back[name][key], value), (name, key)


def test_inference_of_the_architecture():
    full = to_official(_paddle_states(ModelConfig(img_size=128, ch=8, n_res=3, light=False)))
    args, _, notes = from_official(full)
    assert args == ModelConfig(img_size=128, ch=8, n_res=3, light=False) and notes == []
    light = to_official(_paddle_states(ModelConfig(img_size=128, ch=8, n_res=1, light=True)))
    args, _, notes = from_official(light)
    assert args.light and args.ch == 8 and args.n_res == 1 and args.img_size == 256
    assert "img_size is not stored" in notes[0]


def test_single_network_state_dict():
    official = to_official(_paddle_states(ModelConfig(img_size=128, ch=8, n_res=2, light=True)))
    args, states, _ = from_official(official["genB2A"], net="genB2A", img_size=128)
    assert list(states) == ["genB2A"] and args.ch == 8


def test_errors_name_the_key_and_both_shapes():
    official = to_official(_paddle_states(ModelConfig(img_size=128, ch=8, n_res=2, light=True)))
    official["disGA"]["model.4.weight_orig"] = np.zeros((3, 3, 4, 4), np.float32)
    with pytest.raises(ConversionError, match=r"disGA.*'model.4.weight_orig' has shape \[3, 3, 4, 4\], expected \[16, 8, 4, 4\]"):
        from_official(official, img_size=128)
    with pytest.raises(ConversionError, match="expected a dict with the networks"):
        from_official({"model": {}})
    del official["genA2B"]["FC.0.weight"]
    with pytest.raises(ConversionError, match="FC.0.weight"):
        from_official({"genA2B": official["genA2B"]})


def test_transpose_table_covers_exactly_the_linear_weights():
    states = _paddle_states(ModelConfig(img_size=128, ch=8, n_res=2, light=True))
    for name, kind in (("genA2B", "generator"), ("disGA", "discriminator")):
        two_d = {k for k, v in states[name].items() if v.ndim == 2}
        assert two_d == set(LINEAR_WEIGHTS[kind])


def test_convert_tool_round_trip_without_torch(tmp_path, run_tool):
    """`tools/convert_torch.py` both ways in a subprocess where `import torch` fails."""
    args = ModelConfig(img_size=128, ch=8, n_res=2, light=False)
    states = _paddle_states(args)
    official = tmp_path / "official.pt"
    save_torch(to_official(states), official)
    hidden = tmp_path / "hide"
    (hidden / "torch").mkdir(parents=True)
    (hidden / "torch" / "__init__.py").write_text("raise ImportError('torch hidden by the test')\n")
    env = {"PYTHONPATH": str(hidden), "PATH": "/usr/bin:/bin"}
    run = run_tool("convert_torch", str(official), "-o", str(tmp_path / "model.pdparams"), env=env)
    assert run.returncode == 0, run.stderr
    assert "light=False ch=8 n_res=2 img_size=128" in run.stdout
    payload = checkpoint.load(tmp_path / "model.pdparams")
    assert checkpoint.model_config_of(payload) == args
    run = run_tool("convert_torch", "--to-torch", str(tmp_path / "model.pdparams"), "-o", str(tmp_path / "back.pt"),
                   env=env)
    assert run.returncode == 0, run.stderr
    back = load_torch(tmp_path / "back.pt")
    for name in NETWORKS:
        for key, value in to_official(states)[name].items():
            assert np.array_equal(back[name][key], value)


def test_convert_tool_reports_bad_files(tmp_path, run_tool):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    run = run_tool("convert_torch", str(bad), "-o", str(tmp_path / "x.pdparams"))
    assert run.returncode == 1 and "not a PyTorch checkpoint" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "x.pdparams").exists()


def test_exported_file_loads_in_torch(tmp_path):
    torch = pytest.importorskip("torch")
    args = ModelConfig(img_size=128, ch=8, n_res=2, light=True)
    path = checkpoint.save_model(tmp_path / "m.pdparams", args, _paddle_states(args))
    export_official_file(str(path), str(tmp_path / "m.pt"))
    loaded = torch.load(tmp_path / "m.pt", weights_only=True)
    assert set(loaded) == set(NETWORKS)
    assert tuple(loaded["genA2B"]["gamma.weight"].shape) == (32, 32)
    assert tuple(loaded["disLA"]["gap_fc.weight_orig"].shape) == (1, 64)


def test_convert_file_writes_project_checkpoint(tmp_path):
    args = ModelConfig(img_size=128, ch=8, n_res=2, light=True)
    save_torch(to_official(_paddle_states(args)), tmp_path / "o.pt")
    inferred, notes = convert_file(str(tmp_path / "o.pt"), str(tmp_path / "o.pdparams"), img_size=128)
    assert inferred == args and notes == []
    nets = build_networks(args)
    checkpoint.load_networks(nets, checkpoint.load(tmp_path / "o.pdparams"))


@pytest.mark.parametrize("stored", ["float16", "float64"])
def test_convert_keeps_the_stored_dtype_unless_told(tmp_path, stored, run_tool):
    """Official checkpoints saved in float16 (halved to share) or float64 (`.double()`) convert; the weights keep
    their dtype unless `--dtype` is given, and load into a float32 model either way (cast on load)."""
    args = ModelConfig(img_size=128, ch=8, n_res=2, light=True)
    official = {n: {k: v.astype(stored) for k, v in s.items()} for n, s in to_official(_paddle_states(args)).items()}
    save_torch(official, tmp_path / "o.pt")
    _, notes = convert_file(str(tmp_path / "o.pt"), str(tmp_path / "kept.pdparams"), img_size=128)
    assert any(f"stored as {stored}" in n for n in notes)
    kept = checkpoint.load(tmp_path / "kept.pdparams")
    assert {v.dtype for s in kept["networks"].values() for v in s.values()} == {np.dtype(stored)}
    run = run_tool("convert_torch", str(tmp_path / "o.pt"), "-o", str(tmp_path / "f32.pdparams"), "--img-size", "128",
                   "--dtype", "float32")
    assert run.returncode == 0, run.stderr
    cast = checkpoint.load(tmp_path / "f32.pdparams")
    assert {v.dtype for s in cast["networks"].values() for v in s.values()} == {np.dtype("float32")}
    for payload in (kept, cast):
        nets = build_networks(args)
        checkpoint.load_networks(nets, payload)
        np.testing.assert_array_equal(nets["genA2B"].state_dict()["FC.0.weight"].numpy(),
                                      official["genA2B"]["FC.0.weight"].T.astype(np.float32))


@pytest.mark.parametrize("zipfile_format", [True, False], ids=["zip", "legacy"])
def test_bfloat16_checkpoint_converts_as_float32(tmp_path, zipfile_format):
    """numpy has no bfloat16: reading widens it to float32 exactly (bfloat16 is the upper half of a float32), in
    both torch file formats (the legacy one stores a BFloat16Storage)."""
    torch = pytest.importorskip("torch")
    args = ModelConfig(img_size=128, ch=8, n_res=2, light=True)
    official = to_official(_paddle_states(args))
    bf16 = {n: {k: torch.from_numpy(v).bfloat16() for k, v in s.items()} for n, s in official.items()}
    torch.save(bf16, tmp_path / "bf16.pt", _use_new_zipfile_serialization=zipfile_format)
    _, notes = convert_file(str(tmp_path / "bf16.pt"), str(tmp_path / "m.pdparams"), img_size=128)
    assert notes == []  # float32 after reading: nothing to say
    payload = checkpoint.load(tmp_path / "m.pdparams")
    nets = build_networks(args)
    checkpoint.load_networks(nets, payload)
    expected = bf16["genA2B"]["FC.0.weight"].float().numpy().T
    np.testing.assert_array_equal(nets["genA2B"].state_dict()["FC.0.weight"].numpy(), expected)
    assert not np.array_equal(expected, official["genA2B"]["FC.0.weight"].T)  # really rounded to bfloat16
