"""Configuration: official defaults, YAML + overrides, and the quality of error messages."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from ugatit_paddle.config import (
    Config,
    ConfigError,
    DataConfig,
    LossConfig,
    ModelConfig,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    format_config,
    load_config,
    save_config,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_are_the_official_recipe():
    cfg = Config()
    assert cfg.output_dir == "work/selfie2anime"
    m, d, t, loss = cfg.model, cfg.data, cfg.train, cfg.loss
    assert (m.img_size, m.ch, m.n_res, m.light, m.global_layers, m.local_layers) == (256, 64, 4, False, 7, 5)
    assert (d.root, d.num_workers, d.use_shared_memory, d.strict) == ("dataset/selfie2anime", 2, True, False)
    assert (t.iterations, t.batch_size, t.seed) == (1_000_000, 1, 0)
    assert (t.lr, t.beta1, t.beta2, t.weight_decay, t.decay_lr) == (1e-4, 0.5, 0.999, 1e-4, True)
    assert (t.save_every, t.keep_checkpoints, t.log_every, t.sample_every, t.sample_count) == (10_000, 3, 100, 1000, 5)
    assert (t.reuse_fakes, t.amp) == (True, False)
    assert (loss.adv_weight, loss.cycle_weight, loss.identity_weight, loss.cam_weight) == (1.0, 10.0, 10.0, 1000.0)
    assert load_config(None) == cfg


def test_partial_yaml_then_overrides(tmp_path):
    path = write(tmp_path, "model:\n  light: true\n  ch: 32\ntrain:\n  lr: 2e-4\n")
    cfg = load_config(path, ["train.lr=3.0e-4", "model.ch=16", "output_dir=work/x", "data.strict=true"])
    assert cfg.model.light is True and cfg.model.ch == 16
    assert cfg.train.lr == pytest.approx(3e-4) and isinstance(cfg.train.lr, float)
    assert cfg.output_dir == "work/x" and cfg.data.strict is True
    assert cfg.model.img_size == 256 and cfg.train.iterations == 1_000_000  # untouched defaults


def test_yaml_scalar_rules(tmp_path):
    # "1e-4" is a string for PyYAML; float fields accept it, ints are widened to float
    cfg = load_config(write(tmp_path, "train:\n  lr: 1e-4\n  beta1: 0\n  iterations: 1_000\n"))
    assert cfg.train.lr == 1e-4 and cfg.train.beta1 == 0.0 and isinstance(cfg.train.beta1, float)
    assert cfg.train.iterations == 1000
    assert load_config(None, ["output_dir=007"]).output_dir == "007"  # str fields keep the text
    assert load_config(None, ["train.amp=yes"]).train.amp is True  # YAML 1.1 booleans
    assert load_config(write(tmp_path, "")) == Config()  # empty file = defaults
    assert load_config(write(tmp_path, "model:\n")) == Config()  # empty section


@pytest.mark.parametrize(
    "override, key, suggestion",
    [
        ("model.img_szie=3", "model.img_szie", "model.img_size"),
        ("modle.ch=3", "modle.ch", "model.ch"),
        ("train.learning_rate=1", "train.learning_rate", None),
        ("outptu_dir=x", "outptu_dir", "output_dir"),
    ],
)
def test_unknown_key_suggests_closest(override, key, suggestion):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    message = str(info.value)
    assert f"unknown config key '{key}'" in message
    if suggestion:
        assert f"(did you mean '{suggestion}'?)" in message


def test_unknown_key_in_file_names_file(tmp_path):
    path = write(tmp_path, "loss:\n  cam_wieght: 3\n")
    with pytest.raises(ConfigError, match="did you mean 'loss.cam_weight'") as info:
        load_config(path)
    assert str(path) in str(info.value)
    with pytest.raises(ConfigError, match="unknown config key 'trian'.*did you mean 'train'"):
        load_config(write(tmp_path, "trian:\n  lr: 1\n"))


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model.img_size=1.5", "'model.img_size' expects an integer, got 1.5"),
        ("model.img_size=abc", "'model.img_size' expects an integer, got 'abc'"),
        ("train.iterations=true", "'train.iterations' expects an integer, got True"),
        ("train.lr=abc", "'train.lr' expects a number, got 'abc'"),
        ("train.lr=true", "'train.lr' expects a number, got True"),
        ("train.amp=maybe", "'train.amp' expects a boolean (true/false), got 'maybe'"),
        ("train.amp=1", "'train.amp' expects a boolean (true/false), got 1"),
        ("data.num_workers=[1, 2]", "'data.num_workers' expects an integer, got [1, 2]"),
    ],
)
def test_wrong_types(override, expected):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert expected in str(info.value)
    assert f"(in override '{override}')" in str(info.value)


def test_wrong_type_in_file(tmp_path):
    with pytest.raises(ConfigError, match="'model.light' expects a boolean"):
        load_config(write(tmp_path, "model:\n  light: 3\n"))
    with pytest.raises(ConfigError, match="section 'model' must be a mapping"):
        load_config(write(tmp_path, "model: 3\n"))
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))


@pytest.mark.parametrize(
    "override, key",
    [
        ("model.img_size=0", "model.img_size"),
        ("model.ch=-1", "model.ch"),
        ("model.n_res=-1", "model.n_res"),  # 0 is allowed, as in the official code
        ("train.iterations=0", "train.iterations"),
        ("train.batch_size=0", "train.batch_size"),
        ("train.save_every=0", "train.save_every"),
        ("train.keep_checkpoints=0", "train.keep_checkpoints"),
        ("train.seed=-1", "train.seed"),
        ("train.lr=0", "train.lr"),
        ("train.beta1=1", "train.beta1"),
        ("train.beta2=-0.1", "train.beta2"),
        ("train.weight_decay=-1e-4", "train.weight_decay"),
        ("loss.cam_weight=-1", "loss.cam_weight"),
        ("data.num_workers=-1", "data.num_workers"),
        ("train.lr=.inf", "train.lr"),
        ("output_dir=", "output_dir"),
    ],
)
def test_impossible_values(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config(None, [override])


def test_all_range_errors_reported_together():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["train.lr=-1", "loss.adv_weight=-1"])
    assert "'train.lr'" in str(info.value) and "'loss.adv_weight'" in str(info.value)


@pytest.mark.parametrize("img_size", [130, 64])
def test_impossible_architecture(img_size):
    with pytest.raises(ConfigError, match="model.img_size"):
        load_config(None, [f"model.img_size={img_size}"])


def test_small_image_with_shallow_discriminators_is_fine():
    cfg = load_config(None, ["model.img_size=64", "model.global_layers=5", "model.local_layers=3"])
    assert cfg.model.img_size == 64


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["train.lr"])
    with pytest.raises(ConfigError, match="'model' is a config section"):
        load_config(None, ["model=3"])


def test_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(missing)
    bad = write(tmp_path, "model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(bad)
    assert str(bad) in str(info.value)


def test_override_repairs_bad_file_value(tmp_path):
    cfg = load_config(write(tmp_path, "model:\n  img_size: 130\n"), ["model.img_size=128"])
    assert cfg.model.img_size == 128


def test_round_trip(tmp_path):
    cfg = load_config(None, ["model.light=true", "train.lr=2e-4", "output_dir=work/rt"])
    save_config(cfg, tmp_path / "sub" / "saved.yaml")
    assert load_config(tmp_path / "sub" / "saved.yaml") == cfg
    assert config_from_dict(cfg.to_dict()) == cfg
    assert apply_overrides(cfg, ["train.seed=5"]).train.seed == 5 and cfg.train.seed == 0
    with pytest.raises(ConfigError, match="'model.chh'"):
        config_from_dict({"model": {"chh": 1}})


def test_format_config_lists_every_key():
    text = format_config(Config())
    assert "model.img_size" in text and "256" in text and "loss.cam_weight" in text
    sections = (ModelConfig, DataConfig, TrainConfig, LossConfig)
    assert len(text.splitlines()) == 1 + sum(len(dataclasses.fields(cls)) for cls in sections)  # + output_dir


# What each shipped config resolves to, as its differences from Config() (recorded before the files were cut
# down to their differences; the defaults themselves are pinned by test_defaults_are_the_official_recipe).
SHIPPED = {
    "demo.yaml": {"output_dir": "work/demo",
                  "model": {"img_size": 64, "ch": 8, "n_res": 2, "light": True, "global_layers": 5, "local_layers": 3},
                  "data": {"root": "work/demo_data", "num_workers": 0},
                  "train": {"iterations": 1000, "lr": 2e-4, "save_every": 500, "keep_checkpoints": 2, "log_every": 10,
                            "sample_every": 250, "sample_count": 4}},
    "selfie2anime.yaml": {},
    "selfie2anime_light.yaml": {"output_dir": "work/selfie2anime_light", "model": {"light": True}},
    "selfie2anime_16gb.yaml": {"output_dir": "work/selfie2anime_16gb", "train": {"recompute": True}},
    "selfie2anime_tf.yaml": {"output_dir": "work/selfie2anime_tf", "model": {"variant": "tf"}},
}


def test_every_shipped_config_is_listed():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_config_resolves_as_recorded(name):
    want = Config().to_dict()
    for key, value in SHIPPED[name].items():
        if isinstance(value, dict):
            want[key].update(value)
        else:
            want[key] = value
    assert load_config(CONFIGS / name).to_dict() == want


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_config_holds_only_differences_each_commented(name):
    """config.py is the one place for defaults: a shipped file sets a key only to change it, and says why."""
    text = (CONFIGS / name).read_text(encoding="utf-8")
    written = yaml.safe_load(text) or {}
    defaults, resolved = Config().to_dict(), load_config(CONFIGS / name).to_dict()  # resolved: typed values
    for key, value in written.items():
        if isinstance(value, dict):
            for sub in value:
                assert resolved[key][sub] != defaults[key][sub], \
                    f"{name}: {key}.{sub} restates the default {defaults[key][sub]!r}"
        else:
            assert resolved[key] != defaults[key], f"{name}: {key} restates the default {defaults[key]!r}"
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.endswith(":"):  # blank, comment, section header
            continue
        commented = "#" in line or lines[i - 1].strip().startswith("#")  # on the line or just above it
        assert commented, f"{name}: no comment saying why for '{stripped}'"


def test_amp_and_float64_exclude_each_other():
    with pytest.raises(ConfigError, match="'train.amp' and 'train.float64'"):
        config_from_dict({"train": {"amp": True, "float64": True}})
