"""PaddleGAN weight and checkpoint files: round trips (pickle protocol 2 and 4, with and without the name table,
light and full), the frozen InstanceNorm scale/bias check, crafted pickles refused without running anything,
and the shared PaddleGAN bundle through the command line (skipped without ../shared)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import paddle
import pytest

from ugatit_paddle.formats import checkpoint
from ugatit_paddle.parity.foreign import bundle_source, paddlegan_bundle_parity
from ugatit_paddle.formats.paddlegan import PaddleGANError, convert_file, from_paddlegan, load_file
from ugatit_paddle.config import ModelConfig
from ugatit_paddle.models import NETWORKS, build_networks
from ugatit_paddle.formats.safe_pickle import UnsafePickleError

ROOT = Path(__file__).resolve().parents[1]


def _states(args: ModelConfig) -> dict[str, dict[str, np.ndarray]]:
    return {name: {k: v.numpy() for k, v in net.state_dict().items()} for name, net in build_networks(args).items()}


def _paddlegan_layout(states: dict, scale: float = 1.0, bias: float = 0.0, n_res: int = 2) -> dict:
    """What PaddleGAN saves: our keys (the official ones, [in, out] Linear) plus its frozen InstanceNorm
    scale/bias on the encoder's norms."""
    out = {name: dict(state) for name, state in states.items()}
    norms = ["DownBlock.2", "DownBlock.6", "DownBlock.10"]
    norms += [f"DownBlock.{12 + i}.conv_block.{j}" for i in range(n_res) for j in (2, 6)]
    for name in ("genA2B", "genB2A"):
        for norm in norms:
            c = out[name][f"{norm.rsplit('.', 1)[0]}.{int(norm.rsplit('.', 1)[1]) - 1}.weight"].shape[0]
            out[name][f"{norm}.scale"] = np.full(c, scale, np.float32)
            out[name][f"{norm}.bias"] = np.full(c, bias, np.float32)
    return out


@pytest.mark.parametrize("protocol,name_table,light", [(2, False, True), (4, True, True), (4, True, False)])
def test_weight_files_round_trip(tmp_path, protocol, name_table, light):
    args = ModelConfig(img_size=128, ch=4, n_res=2, light=light)
    states = _states(args)
    payload = _paddlegan_layout(states)
    if name_table:
        payload["StructuredToParameterName@@"] = {}
    src = tmp_path / "epoch_3_weight.pdparams"
    src.write_bytes(pickle.dumps(payload, protocol=protocol))
    dst = tmp_path / "converted.pdparams"
    got, notes = convert_file(src, dst, img_size=128)
    assert got == args and notes == []
    converted = checkpoint.load(dst)["networks"]
    for name in NETWORKS:
        assert converted[name].keys() == states[name].keys()
        for key, value in states[name].items():
            assert np.array_equal(converted[name][key], value), (name, key)


def test_checkpoint_files_and_the_instance_norm_check(tmp_path):
    args = ModelConfig(img_size=128, ch=4, n_res=2, light=True)
    payload = _paddlegan_layout(_states(args))
    payload.update(epoch=7, optimG={"linear_0.w_0_moment1_0": np.zeros((16, 1), np.float32),
                                    "LR_Scheduler": {"last_epoch": 7, "last_lr": 1e-4}}, optimD={})
    src = tmp_path / "epoch_7_checkpoint.pdparams"
    src.write_bytes(pickle.dumps(payload, protocol=4))
    _, _, notes = from_paddlegan(load_file(src), str(src), 128)
    assert any("optimiser state is not carried over" in n for n in notes)

    perturbed = _paddlegan_layout(_states(args), scale=1.25)
    with pytest.raises(PaddleGANError, match=r"genA2B's InstanceNorm .*DownBlock\.2\.scale in \[1\.25, 1\.25\]"):
        from_paddlegan(perturbed, "file", 128)
    _, states, notes = from_paddlegan(perturbed, "file", 128, force=True)
    assert "DownBlock.2.scale" not in states["genA2B"] and any("--force" in n for n in notes)
    with pytest.raises(PaddleGANError, match="unexpected entries"):
        from_paddlegan({**payload, "extra": 1}, "file", 128)
    with pytest.raises(PaddleGANError, match="none of the networks"):
        from_paddlegan({"model": {}}, "file")
    with pytest.raises(PaddleGANError, match="holds a list"):
        from_paddlegan([1, 2], "file")
    broken = _paddlegan_layout(_states(args))
    del broken["genA2B"]["UpBlock2.11.weight"]
    with pytest.raises(PaddleGANError, match="UpBlock2.11.weight"):
        from_paddlegan(broken, "file", 128)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Eval:
    def __init__(self, expression: str) -> None:
        self.expression = expression

    def __reduce__(self):
        return eval, (self.expression,)


def test_crafted_pickles_are_refused_without_running_anything(tmp_path, run_tool):
    marker = tmp_path / "pwned"
    cases = [
        pickle.dumps({"genA2B": {"w": _Exploit(marker)}}, protocol=2),
        pickle.dumps({"genA2B": _Exploit(marker), "StructuredToParameterName@@": {}}, protocol=4),
        # builtins.eval (which paddle's DenseTensor encoding names) with another expression
        pickle.dumps({"genA2B": {"w": _Eval(f"__import__('os').system('touch {marker}')")}}, protocol=2),
    ]
    for i, data in enumerate(cases):
        path = tmp_path / f"crafted{i}.pdparams"
        path.write_bytes(data)
        with pytest.raises(UnsafePickleError, match="refusing to load"):
            load_file(path)
        run = run_tool("convert_paddlegan", str(path), "-o", str(tmp_path / "o"), timeout=300)
        assert run.returncode == 1 and "refusing to load" in run.stderr
    assert not marker.exists() and not (tmp_path / "o").exists()
    truncated = tmp_path / "truncated.pdparams"
    truncated.write_bytes(pickle.dumps({"genA2B": {"w": np.zeros(100, np.float32)}}, protocol=4)[:-20])
    with pytest.raises(PaddleGANError, match="truncated or corrupt"):
        load_file(truncated)


def test_shared_paddlegan_bundle_through_the_command_line(tmp_path, shared_bundle, run_tool):
    bundle = shared_bundle("paddlegan", "light_96_ch8")
    assert bundle_source(bundle) == "paddlegan"
    out = tmp_path / "converted.pdparams"
    for name in ("epoch_1_weight.pdparams", "epoch_1_checkpoint.pdparams"):
        args = [str(bundle / name), "-o", str(out), "--img-size", "96"]
        run = run_tool("convert_paddlegan", *args, timeout=300)
        assert run.returncode == 1 and "DownBlock.2.scale" in run.stderr and "--force" in run.stderr
        run = run_tool("convert_paddlegan", *args, "--force", timeout=300)
        assert run.returncode == 0 and "light=True ch=8 n_res=2 img_size=96" in run.stdout, run.stderr
    rows = paddlegan_bundle_parity(bundle)
    assert len(rows) == 19 and all(r.ok for r in rows), [r for r in rows if not r.ok]
    assert [r.check for r in rows].count("paddlegan refusal") == 1  # its own summary line, apart from the outputs
    # the converted file drives the official-variant networks exactly like the parity check
    payload = checkpoint.load(out)
    nets = build_networks(checkpoint.model_config_of(payload), ("genA2B",))
    checkpoint.load_networks(nets, payload, str(out), required=("genA2B",))
    x = np.load(bundle / "batch.npz")["x"]
    nets["genA2B"].eval()  # not chained: Layer.eval() returns None in Paddle 2.6
    with paddle.no_grad():
        fake = nets["genA2B"](paddle.to_tensor(x))[0].numpy()
    ref = np.load(bundle / "outputs_gen_in_affine_identity.npz")["genA2B.0"]
    assert np.abs(fake - ref).max() <= 1e-4 * np.abs(ref).max()
