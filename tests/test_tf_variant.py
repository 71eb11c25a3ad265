"""The TF-compatible networks (model.variant: tf) and the TF checkpoint converter: settings inferred from
synthetic checkpoints of other sizes, layouts, spectral norm, folder names, refusals, export and fine-tuning;
the shared bundles recorded from the official TF code through the command line (skipped without ../shared)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import paddle
import pytest

from helpers import tf_reference
from helpers.tensorbundle_writer import tf_ugatit_variables, write_bundle
from ugatit_paddle.formats import checkpoint
from ugatit_paddle.config import ConfigError, config_from_dict
from ugatit_paddle.parity.foreign import TF_LIMIT, bundle_source, tf_bundle_parity
from ugatit_paddle.formats import tf as tfconv
from ugatit_paddle.formats.tf import TFConversionError, from_tf_checkpoint
from ugatit_paddle.config import ModelConfig
from ugatit_paddle.models import build_networks, make_variant, output_size
from ugatit_paddle.models.discriminator import heatmap_size
from PIL import Image
from ugatit_paddle.config import load_config
from ugatit_paddle.formats.checkpoint import load_generators
from ugatit_paddle.formats.tensorbundle import TensorBundle
from ugatit_paddle.inference.export import InferenceModel, export_checkpoint
from ugatit_paddle.models.norms import AdaILN
from ugatit_paddle.parity.foreign import _like, _run_generator
from ugatit_paddle.training.loop import Trainer

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_FOLDER = "UGATIT_selfie2anime_lsgan_4resblock_6dis_1_1_10_10_1000_sn_smoothing"


# ------------------------------------------------------------------------------------------ the networks
def test_tf_variant_networks_have_the_tf_parameters_and_sizes():
    args = ModelConfig(img_size=64, ch=4, n_res=2, light=True, global_layers=5, local_layers=3, variant="tf")
    nets = build_networks(args)
    gen = nets["genA2B"].state_dict()
    assert "cam_fc.bias" in gen and "gap_fc.weight" not in gen and "DownBlock.2.scale" in gen
    assert "DownBlock.1.bias" in gen and "FC.0.bias" in gen and "UpBlock2.11.bias" in gen
    dis = nets["disGA"].state_dict()
    assert "cam_fc.weight_orig" in dis and "conv.bias" in dis
    x = paddle.uniform([1, 3, 64, 64], min=-1, max=1)
    out, cam, heat = nets["genA2B"](x)
    assert out.shape == [1, 3, 64, 64] and cam.shape == [1, 2] and heat.shape == [1, 1, 16, 16]
    tf = make_variant("tf")
    for name, layers, side in (("disGA", 5, 8), ("disLA", 3, 32)):
        logit, cam, heat = nets[name](x)
        assert logit.shape == [1, 1, side, side] and heat.shape == [1, 1, side, side]  # TF keeps the side
        assert output_size(64, layers, tf) == side == heatmap_size(64, layers, tf)
    # the TF code's own limit: img 64 with n_dis 6 (global 7 layers) fails, 96 works (global 3x3)
    assert output_size(64, 7, tf) is None and output_size(96, 7, tf) == 3 and output_size(256, 7, tf) == 8
    assert output_size(256, 5, tf) == 32
    assert output_size(256, 7) == 6 and heatmap_size(256, 7) == 7  # the official variant is unchanged


def test_tf_smoothing_and_variance_are_used():
    x = paddle.uniform([2, 4, 6, 6], min=-1, max=1)
    gamma, beta = paddle.ones([2, 4]), paddle.zeros([2, 4])
    smooth = AdaILN(4, unbiased=False, smoothing=True, rho_init=1.0)
    with paddle.no_grad():
        smooth.rho.set_value(paddle.to_tensor([[[[1.05]], [[0.5]], [[0.05]], [[1.0]]]]))
    xn = x.numpy().astype(np.float64)
    rho = np.clip(np.array([1.05, 0.5, 0.05, 1.0]) - 0.1, 0, 1).reshape(1, 4, 1, 1)
    x_in = (xn - xn.mean((2, 3), keepdims=True)) / np.sqrt(xn.var((2, 3), keepdims=True) + 1e-5)
    x_ln = (xn - xn.mean((1, 2, 3), keepdims=True)) / np.sqrt(xn.var((1, 2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(smooth(x, gamma, beta).numpy(), rho * x_in + (1 - rho) * x_ln, atol=2e-6)


def test_config_validates_the_variant_settings():
    shipped = load_config(ROOT / "configs" / "selfie2anime_tf.yaml")  # fine-tuning the released TF model
    assert shipped.model.variant == "tf" and shipped.model.global_layers == 7 and not shipped.model.light
    cfg = config_from_dict({"model": {"variant": "tf", "tf_smoothing": False, "img_size": 96}})
    assert cfg.model.variant == "tf" and not cfg.model.tf_smoothing
    with pytest.raises(ConfigError, match="one of official, tf"):
        config_from_dict({"model": {"variant": "tensorflow"}})
    with pytest.raises(ConfigError, match="settings of variant 'tf'"):
        config_from_dict({"model": {"tf_sn": False}})
    with pytest.raises(ConfigError, match="smallest valid img_size is 96"):
        config_from_dict({"model": {"variant": "tf", "img_size": 64}})  # global 7 layers need 96 in TF


# ------------------------------------------------------------------------------------------ conversion
@pytest.mark.parametrize("light,img_size,ch,n_res,n_dis,sn", [
    (True, 128, 4, 4, 5, True),   # light, n_dis 5
    (False, 64, 4, 2, 4, True),   # full, n_res 2
    (False, 128, 2, 4, 7, True),  # full at 128, n_dis 7 (global 8 layers)
    (True, 96, 4, 3, 6, False),   # sn off
    (True, 64, 2, 1, 3, True),    # n_dis 3: local keeps one stride-2 layer
])
def test_settings_are_inferred_from_synthetic_checkpoints(tmp_path, light, img_size, ch, n_res, n_dis, sn):
    if n_dis == 7 and img_size < 256:
        img_size = 256
    variables = tf_ugatit_variables(light, img_size, ch, n_res, n_dis, sn)
    prefix = write_bundle(tmp_path / "ckpt" / "UGATIT.model-5", variables)
    args, states, notes = from_tf_checkpoint(prefix, img_size=img_size if light else None)
    local = max(n_dis - 3, 1) + 2
    assert args == ModelConfig(img_size, ch, n_res, light, n_dis + 1, local, "tf", True, sn)
    assert set(states) == {"genA2B", "genB2A", "disGA", "disGB", "disLA", "disLB"}
    assert any("optimiser variables" in n for n in notes) and any("assuming the official default" in n for n in notes)
    nets = build_networks(args)  # every converted state fits exactly
    for name, net in nets.items():
        net.set_state_dict(states[name])
    # layouts: generator_B is genA2B; conv HWIO -> OIHW; dense kept [in, out]; rho [C] -> [1, C, 1, 1]
    g = "generator_B"
    k = variables[f"{g}/conv/conv2d/kernel"]
    assert np.array_equal(states["genA2B"]["DownBlock.1.weight"], k.transpose(3, 2, 0, 1))
    assert np.array_equal(states["genB2A"]["cam_fc.weight"], variables["generator_A/CAM_logit/kernel"])
    rho = variables[f"{g}/adaptive_resblock0/res1/instance_layer_norm/rho"]
    assert np.array_equal(states["genA2B"]["UpBlock1_1.norm1.rho"], rho.reshape(1, -1, 1, 1))
    fc0 = variables[f"{g}/MLP/linear_0/dense/kernel"]
    if not light:  # rows in NHWC-flatten order -> NCHW
        side, c = img_size // 4, 4 * ch
        h, w, cc = 1, 2, 3
        assert np.array_equal(states["genA2B"]["FC.0.weight"][cc * side * side + h * side + w],
                              fc0[(h * side + w) * c + cc])
    else:
        assert np.array_equal(states["genA2B"]["FC.0.weight"], fc0)


def _tf_sigma(kernel: np.ndarray, u: np.ndarray, iterations: int) -> float:
    """The TF code's spectral norm after `iterations` forwards from the stored u, in float64."""
    w = kernel.astype(np.float64).reshape(-1, kernel.shape[-1])
    u = u.astype(np.float64)
    for _ in range(iterations):
        v = u @ w.T
        v /= np.linalg.norm(v)
        u = v @ w
        u /= np.linalg.norm(u)
    return float((v @ w @ u.T).item())


def test_spectral_norm_eval_uses_tfs_first_pass_and_train_mode_continues_it(tmp_path):
    variables = tf_ugatit_variables(True, 64, 4, 1, 4, True)
    args, states, _ = from_tf_checkpoint(write_bundle(tmp_path / "m", variables), img_size=64)
    net = build_networks(args, ("disGA",))["disGA"]
    net.set_state_dict(states["disGA"])
    x = paddle.uniform([1, 3, 64, 64], min=-1, max=1)
    scope = "discriminator_A/global"
    for tf_name, layer in (("conv_1", net.model[4]), ("CAM_logit", net.cam_fc), ("D_logit", net.conv)):
        kernel, u = variables[f"{scope}/{tf_name}/kernel"], variables[f"{scope}/{tf_name}/u"]
        for mode, iterations in (("eval", 1), ("train", 2)):
            getattr(net, mode)()
            with paddle.no_grad():
                net(x)
            # the sigma the hook divides by: u . (W v) with the layer's vectors after this forward
            w = layer.weight_orig.numpy().astype(np.float64)
            mat = w.T if w.ndim == 2 else w.reshape(w.shape[0], -1)  # Linear [in, out] -> [out, in]
            sigma = float(layer.weight_u.numpy() @ mat @ layer.weight_v.numpy())
            assert sigma == pytest.approx(_tf_sigma(kernel, u, iterations), rel=1e-5), (tf_name, mode)
        net.set_state_dict(states["disGA"])


def test_smoothing_from_the_official_folder_name_with_and_without_meta(tmp_path):
    variables = tf_ugatit_variables(True, 96, 2, 1, 6, True, optimizer=False)
    for folder, expected in ((OFFICIAL_FOLDER, True), (OFFICIAL_FOLDER[:-len("_smoothing")], False),
                             ("UGATIT_light_selfie2anime_lsgan_1resblock_6dis_1_1_10_10_1000", False)):
        prefix = write_bundle(tmp_path / folder / "UGATIT.model-1000000", variables)
        for meta in (False, True):
            if meta:
                prefix.with_name(prefix.name + ".meta").write_bytes(b"not read")
            (prefix.parent / "checkpoint").write_text(f'model_checkpoint_path: "/elsewhere/{prefix.name}"\n')
            args, _, notes = from_tf_checkpoint(prefix.parent, img_size=96)
            assert args.tf_smoothing is expected and any("from the folder name" in n for n in notes)
            assert from_tf_checkpoint(prefix.parent, img_size=96, smoothing=not expected)[0].tf_smoothing is not expected


def test_refusals_name_the_problem(tmp_path):
    base = tf_ugatit_variables(True, 96, 2, 1, 6, True, optimizer=False)

    def convert(variables: dict, **kwargs) -> None:
        shutil.rmtree(tmp_path / "c", ignore_errors=True)
        from_tf_checkpoint(write_bundle(tmp_path / "c" / "m", variables), **kwargs)

    missing = {k: v for k, v in base.items() if k != "generator_A/up_conv_1/conv2d/bias"}
    with pytest.raises(TFConversionError, match="missing .*generator_A/up_conv_1/conv2d/bias"):
        convert(missing)
    with pytest.raises(TFConversionError, match="unexpected .*generator_A/extra/kernel"):
        convert({**base, "generator_A/extra/kernel": np.zeros(3, np.float32)})
    with pytest.raises(TFConversionError, match="no generator_A or generator_B"):
        convert({k: v for k, v in base.items() if not k.startswith("generator")})
    wide = dict(base)
    wide["generator_B/MLP/linear_0/dense/kernel"] = np.zeros((8, 12), np.float32)
    with pytest.raises(TFConversionError, match="width 12, expected 4 \\* ch = 8"):
        convert(wide)
    full = tf_ugatit_variables(False, 96, 2, 1, 6, True, optimizer=False)
    with pytest.raises(TFConversionError, match="trained at img_size 96, not 128"):
        convert(full, img_size=128)
    with pytest.raises(TFConversionError, match="smallest valid img_size is 96"):
        convert(base, img_size=64)


def test_converted_tf_model_exports_and_fine_tunes(tmp_path, data_root):
    ckpt = tmp_path / "tf.pdparams"
    prefix = write_bundle(tmp_path / "tf" / "m", tf_ugatit_variables(False, 64, 4, 1, 4, True, seed=3))
    args, _ = tfconv.convert_file(prefix, ckpt)
    _, nets = load_generators(ckpt, ("genA2B",))
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 64, 64)).astype(np.float32)
    with paddle.no_grad():
        ref = [t.numpy() for t in nets["genA2B"](paddle.to_tensor(x))]
    export_checkpoint(ckpt, tmp_path / "exported")
    for onednn in (False, True):
        for ours, theirs in zip(InferenceModel(tmp_path / "exported", mkldnn=onednn)(x), ref):
            assert np.abs(ours - theirs).max() <= 1e-4 * np.abs(theirs).max()

    model = {"img_size": 64, "ch": 4, "n_res": 1, "light": False, "global_layers": 5, "local_layers": 3,
             "variant": "tf"}
    cfg = {"output_dir": str(tmp_path / "ft"), "model": model, "data": {"root": str(data_root), "num_workers": 0},
           "train": {"iterations": 2, "save_every": 1, "sample_every": 100, "log_every": 1, "sample_count": 1}}
    trainer = Trainer.from_dict(cfg)
    trainer.train(resume=str(ckpt), stop_after=1)
    assert trainer.iteration == 1  # weights-only file: a new optimiser from iteration 0
    before = checkpoint.load(ckpt)["networks"]["genA2B"]["FC.0.weight"]
    after = trainer.model.nets["genA2B"].state_dict()["FC.0.weight"].numpy()
    assert 0 < np.abs(after - before).max() < 1e-2
    wrong = Trainer.from_dict({**cfg, "model": {**model, "variant": "official"}, "output_dir": str(tmp_path / "w")})
    with pytest.raises(checkpoint.CheckpointError, match="variant='tf'"):
        wrong.train(resume=str(ckpt), stop_after=1)


# ------------------------------------------------------------------------------------------ shared bundles
def test_shared_tf_bundles_through_the_command_line(tmp_path, tf_bundle, run_tool):
    assert bundle_source(tf_bundle) == "tf"
    config = json.loads((tf_bundle / "reference.json").read_text())["config"]
    out = tmp_path / "converted.pdparams"
    run = run_tool("convert_tf", str(tf_bundle), "-o", str(out), "--img-size", str(config["img_size"]))
    assert run.returncode == 0, run.stderr
    assert f"img_size {config['img_size']}, ch {config['ch']}, n_res 4, n_dis {config['n_dis']}" in run.stdout
    assert "assuming the official default, on" in run.stdout and "skipped" in run.stdout
    payload = checkpoint.load(out)
    args = checkpoint.model_config_of(payload)
    nets = build_networks(args)
    checkpoint.load_networks(nets, payload, str(out))
    batch, ref = np.load(tf_bundle / "batch.npz"), np.load(tf_bundle / "outputs.npz")
    nets["genA2B"].eval()  # not chained: Layer.eval() returns None in Paddle 2.6
    with paddle.no_grad():
        fake = nets["genA2B"](paddle.to_tensor(batch["real_A"].transpose(0, 3, 1, 2)))[0].numpy()
    theirs = ref["A2B_fake_B"]
    assert np.abs(fake.transpose(0, 2, 3, 1) - theirs).max() <= TF_LIMIT * np.abs(theirs).max()
    rows = tf_bundle_parity(tf_bundle)
    assert len(rows) == 22 and all(r.ok for r in rows), [r for r in rows if not r.ok]
    spectral = np.load(tf_bundle / "sn_power_iteration.npz")
    assert np.allclose(payload["networks"]["disGA"]["conv.weight_u"],
                       spectral["discriminator_A/global/D_logit/u_hat"].reshape(-1), atol=1e-6)

    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        Image.fromarray(((batch["real_A"][i] + 1) * 127.5).astype(np.uint8)).save(images / f"face{i}.png")
    run = run_tool("predict", "--checkpoint", str(out), "--input", str(images), "--output", str(tmp_path / "o"))
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["face0.png", "face1.png"]


def test_batch_of_one_heatmaps_are_squeezed_like_tf(tmp_path, tf_bundle):
    """The TF code tf.squeeze's the heatmaps, dropping the batch axis for one image: a batch-1 recording (the
    first sample of the batch-2 one: every output is per sample) must pass the same way."""
    one = tmp_path / "batch1"
    shutil.copytree(tf_bundle, one)
    batch, outputs = np.load(one / "batch.npz"), np.load(one / "outputs.npz")
    np.savez(one / "batch.npz", **{k: batch[k][:1] for k in batch.files})
    sliced = {k: (outputs[k][0] if k.endswith("heatmap") else outputs[k][:1]) for k in outputs.files}
    assert sliced["A2B_heatmap"].ndim == 2
    np.savez(one / "outputs.npz", **sliced)
    rows = tf_bundle_parity(one)
    assert len(rows) == 22 and all(r.ok for r in rows), [r for r in rows if not r.ok]


# ------------------------------------------------------------------------------------------ other sizes
@pytest.mark.parametrize("light,img_size,ch,n_dis,sn,smoothing,batch", [
    (False, 64, 4, 4, True, True, 2),
    (True, 96, 4, 6, False, False, 1),
    (True, 128, 2, 5, True, False, 1),
    (False, 32, 2, 3, True, True, 2),
    (True, 256, 2, 7, True, True, 1),
])
def test_converted_networks_match_a_numpy_transcription_of_the_tf_code(tmp_path, light, img_size, ch, n_dis, sn,
                                                                        smoothing, batch):
    """Settings and sizes the shared bundles do not cover, against tests/helpers/tf_reference.py (float64, NHWC, TF names)."""
    n_res = 4
    variables = tf_ugatit_variables(light, img_size, ch, n_res, n_dis, sn, seed=img_size + n_dis, optimizer=False)
    rng = np.random.default_rng(1)
    for name in [n for n in variables if n.endswith("instance_layer_norm/rho")][:3]:
        variables[name] = rng.uniform(-0.2, 1.3, variables[name].shape).astype(np.float32)  # also outside [0, 1]
    args, states, _ = from_tf_checkpoint(write_bundle(tmp_path / "m", variables), img_size=img_size,
                                         smoothing=smoothing)
    nets = build_networks(args)
    for name, net in nets.items():
        net.set_state_dict(states[name])
        net.eval()
    v64 = {k: a.astype(np.float64) for k, a in variables.items()}
    x = rng.uniform(-1, 1, (batch, img_size, img_size, 3))
    x_nchw = x.transpose(0, 3, 1, 2).astype(np.float32)

    def check(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
        assert np.abs(ours - ref).max() <= TF_LIMIT * np.abs(ref).max(), what

    ref = tf_reference.generator(x, v64, "generator_B", n_res, light, smoothing)
    ours = _run_generator(nets["genA2B"], x_nchw)
    check(ours["fake"].transpose(0, 2, 3, 1), ref["fake"], "fake")
    for key in ("cam_logit", "heatmap", "mlp_gamma", "mlp_beta"):
        check(_like(ours[key], ref[key]), ref[key], key)
    for name, part, n_stride2 in (("disGB", "global", n_dis - 1), ("disLB", "local", max(n_dis - 3, 1))):
        ref = tf_reference.discriminator(x, v64, f"discriminator_B/{part}", n_stride2, sn)
        with paddle.no_grad():
            logit, cam, heat = (t.numpy() for t in nets[name](paddle.to_tensor(x_nchw)))
        check(logit.transpose(0, 2, 3, 1), ref["logit"], f"{name} logit")
        check(cam, ref["cam_logit"], f"{name} cam")
        check(_like(heat, ref["heatmap"]), ref["heatmap"], f"{name} heatmap")


def test_the_numpy_transcription_reproduces_the_shared_tf_bundles(tf_bundle):
    """Validates tests/helpers/tf_reference.py itself against the recordings of the official TF code."""
    config = json.loads((tf_bundle / "reference.json").read_text())["config"]
    bundle = TensorBundle(tf_bundle)
    v = {name: bundle.read(name).astype(np.float64) for name in bundle.entries if "Adam" not in name}
    batch, ref = np.load(tf_bundle / "batch.npz"), np.load(tf_bundle / "outputs.npz")
    ours = tf_reference.generator(batch["real_A"].astype(np.float64), v, "generator_B", config["n_res"],
                                  config["light"], config["smoothing"])
    assert np.abs(ours["fake"] - ref["A2B_fake_B"]).max() < 1e-4
    assert np.abs(ours["heatmap"] - ref["A2B_heatmap"]).max() <= 1e-4 * np.abs(ref["A2B_heatmap"]).max()
    ours = tf_reference.discriminator(batch["real_B"].astype(np.float64), v, "discriminator_B/global",
                                      config["n_dis"] - 1, config["sn"])
    assert np.abs(ours["logit"] - ref["D_B_on_real_B_global_logit"]).max() < 1e-5
