"""Experiment configuration: nested dataclasses, YAML files and ``section.key=value`` overrides.

The dataclass defaults are the official U-GAT-IT recipe (znxlwm/UGATIT-pytorch, selfie2anime)
and are the single source of truth; YAML files may be partial.

Every problem (missing or malformed file, unknown key, wrong type, impossible value,
impossible architecture) raises :class:`ConfigError` with a message naming the key; command
line tools print it and exit with status 2.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from .models import check_model_config

__all__ = [
    "ConfigError",
    "ModelConfig",
    "DataConfig",
    "TrainConfig",
    "LossConfig",
    "Config",
    "load_config",
    "config_from_dict",
    "apply_overrides",
    "validate_config",
    "save_config",
    "format_config",
]


class ConfigError(ValueError):
    """A configuration file, override or value is invalid; the message names the culprit."""


@dataclass
class ModelConfig:
    """Generator / discriminator architecture: what fixes the shapes of the six networks (stored in every
    checkpoint and exported model)."""

    img_size: int = 256  # square training and test resolution
    ch: int = 64  # channels after the first generator / discriminator convolution
    n_res: int = 4  # residual blocks in the encoder and in the decoder
    light: bool = False  # light generator: gamma/beta MLP on pooled features (paper's U-GAT-IT-light)
    global_layers: int = 7  # depth of the global discriminators (disGA, disGB)
    local_layers: int = 5  # depth of the local discriminators (disLA, disLB)
    variant: str = "official"  # networks: "official" (PyTorch code) or "tf" (the paper's TensorFlow code)
    tf_smoothing: bool = True  # variant tf only: AdaILN reads clip(rho - 0.1, 0, 1) (TF --smoothing)
    tf_sn: bool = True  # variant tf only: spectral norm in the discriminators (TF --sn)


@dataclass
class DataConfig:
    """Dataset location and loading."""

    root: str = "dataset/selfie2anime"  # folder holding trainA, trainB, testA, testB; or a .zip of them
    cache_dir: str = "work/datasets"  # where a zip data.root is extracted (once, reused while the zip is unchanged)
    num_workers: int = 2  # DataLoader worker processes per domain (0 = load in the main process)
    use_shared_memory: bool = True  # pass batches from workers through /dev/shm
    strict: bool = False  # raise on an unreadable image instead of skipping it with a warning


AMP_DTYPES = ("float16", "bfloat16")  # train.amp_dtype


@dataclass
class TrainConfig:
    """Optimisation schedule, checkpoints and logging."""

    iterations: int = 1_000_000  # total training iterations (one batch of A and one of B each)
    batch_size: int = 1  # images per domain per iteration and process
    seed: int = 0  # seeds parameter initialisation, sampling order and augmentation
    lr: float = 1e-4  # Adam learning rate
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    weight_decay: float = 1e-4  # coupled L2 (torch Adam's weight_decay), not AdamW
    decay_lr: bool = True  # decay the learning rate linearly to 0 over the second half
    save_every: int = 10_000  # checkpoint interval in iterations
    keep_checkpoints: int = 3  # number of most recent checkpoints kept on disk (and of generator files)
    save_generators_every: int = 0  # also write the generators alone (for sharing) every N iterations; 0 = off
    log_every: int = 100  # loss logging interval in iterations
    sample_every: int = 1000  # sample sheet interval in iterations
    sample_count: int = 5  # images per domain on a sample sheet
    reuse_fakes: bool = True  # compute the fakes once for the D and G steps (exact, see REFERENCE)
    amp: bool = False  # automatic mixed precision (GPU only)
    amp_dtype: str = "float16"  # float16 (with a loss scaler) or bfloat16 (A100 and newer; no scaler needed)
    amp_max_skipped: int = 20  # AMP: stop after this many overflowed steps of one optimiser in a row
    deterministic: bool = False  # GPU: deterministic cuDNN kernels, no autotuning (slower; see README)
    recompute: bool = False  # recompute block activations in backward instead of keeping them: less memory, same results
    float64: bool = False  # train in float64: for numerical checks (no float32 rounding), several times slower


@dataclass
class LossConfig:
    """Loss weights (paper / official code)."""

    adv_weight: float = 1.0  # LSGAN adversarial losses (outputs and CAM logits)
    cycle_weight: float = 10.0  # L1 cycle consistency
    identity_weight: float = 10.0  # L1 identity
    cam_weight: float = 1000.0  # generator CAM binary cross-entropy


@dataclass
class Config:
    """The whole experiment configuration."""

    output_dir: str = "work/selfie2anime"  # checkpoints, samples and logs go here
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML-serialisable) of all values."""
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# Key bookkeeping

_SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "loss": LossConfig,
}
_TOP_LEVEL_SCALARS: tuple[str, ...] = ("output_dir",)


def _field_types(cls: type) -> dict[str, type]:
    """Field name -> declared type, for the scalar (int, float, bool, str) fields of ``cls``."""
    names = {"int": int, "float": float, "bool": bool, "str": str}
    types = {}
    for f in dataclasses.fields(cls):
        declared = f.type if isinstance(f.type, str) else f.type.__name__
        if declared in names:
            types[f.name] = names[declared]
    return types


_SECTION_FIELDS: dict[str, dict[str, type]] = {name: _field_types(cls) for name, cls in _SECTIONS.items()}
_TOP_LEVEL_TYPES: dict[str, type] = {name: _field_types(Config)[name] for name in _TOP_LEVEL_SCALARS}


def _all_keys() -> list[str]:
    """Every valid dotted key, sections included (used for typo suggestions)."""
    keys = list(_TOP_LEVEL_SCALARS) + list(_SECTIONS)
    for section, fields in _SECTION_FIELDS.items():
        keys += [f"{section}.{name}" for name in fields]
    return keys


def _unknown_key(key: str, where: str) -> ConfigError:
    """Error for an unknown dotted key, suggesting the closest valid one."""
    close = difflib.get_close_matches(key, _all_keys(), n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"unknown config key '{key}'{hint}{where}")


def _type_name(tp: type) -> str:
    return {int: "an integer", float: "a number", bool: "a boolean (true/false)", str: "a string"}[tp]


def _coerce(key: str, value: Any, tp: type, where: str) -> Any:
    """Check ``value`` (already YAML-parsed) against the field type ``tp`` and convert it."""

    def bad() -> ConfigError:
        return ConfigError(f"config key '{key}' expects {_type_name(tp)}, got {value!r}{where}")

    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad()
    if tp is float:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            # PyYAML (YAML 1.1) reads "1e-4" as a string; accept plain numeric spellings.
            try:
                number = float(value.strip())
            except ValueError:
                raise bad() from None
        else:
            raise bad()
        if not math.isfinite(number):
            raise ConfigError(f"config key '{key}' must be a finite number, got {value!r}{where}")
        return number
    # str: any scalar is accepted and written as text
    if isinstance(value, (dict, list)) or value is None:
        raise bad()
    return value if isinstance(value, str) else str(value)


def _merge_mapping(values: dict[str, Any], data: Any, where: str) -> None:
    """Merge a nested mapping (parsed YAML / to_dict output) into the flat ``values`` dict."""
    if data is None:
        return
    if not isinstance(data, Mapping):
        raise ConfigError(f"config must be a mapping of sections, got {type(data).__name__}{where}")
    for top, content in data.items():
        top = str(top)
        if top in _TOP_LEVEL_TYPES:
            values[top] = _coerce(top, content, _TOP_LEVEL_TYPES[top], where)
        elif top in _SECTIONS:
            if content is None:
                continue
            if not isinstance(content, Mapping):
                raise ConfigError(
                    f"config section '{top}' must be a mapping of keys (e.g. '{top}:' followed by "
                    f"indented 'key: value' lines), got {content!r}{where}"
                )
            for name, value in content.items():
                key = f"{top}.{name}"
                if name not in _SECTION_FIELDS[top]:
                    raise _unknown_key(key, where)
                values[key] = _coerce(key, value, _SECTION_FIELDS[top][name], where)
        else:
            raise _unknown_key(top, where)


def _parse_override(text: str) -> tuple[str, Any, str]:
    """Split ``section.key=value`` into (key, YAML-parsed value, raw value text)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like section.key=value (e.g. train.lr=2e-4)")
    key, raw = text.split("=", 1)
    key = key.strip()
    raw = raw.strip()
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw  # not a YAML scalar: keep the text; the type check decides
    return key, value, raw


def _merge_overrides(values: dict[str, Any], overrides: Sequence[str]) -> None:
    """Apply ``section.key=value`` strings to the flat ``values`` dict (type-checked)."""
    for text in overrides:
        key, value, raw = _parse_override(text)
        where = f" (in override '{text}')"
        if key in _SECTIONS:
            raise ConfigError(
                f"'{key}' is a config section, not a key; override its keys like "
                f"{key}.{next(iter(_SECTION_FIELDS[key]))}=...{where}"
            )
        section, _, name = key.partition(".")
        if key in _TOP_LEVEL_TYPES:
            tp = _TOP_LEVEL_TYPES[key]
        elif section in _SECTIONS and name in _SECTION_FIELDS[section]:
            tp = _SECTION_FIELDS[section][name]
        else:
            raise _unknown_key(key, where)
        # str fields keep the text as typed (so "output_dir=007" stays "007")
        values[key] = raw if tp is str else _coerce(key, value, tp, where)


def apply_overrides(cfg: Config, overrides: Sequence[str]) -> Config:
    """Return a validated copy of ``cfg`` with ``section.key=value`` overrides applied."""
    values = _flatten(cfg)
    _merge_overrides(values, overrides)
    return _build(values)


# --------------------------------------------------------------------------------------------
# Construction and validation


def _flatten(cfg: Config) -> dict[str, Any]:
    """Config -> flat {dotted key: value}."""
    values: dict[str, Any] = {name: getattr(cfg, name) for name in _TOP_LEVEL_SCALARS}
    for section in _SECTIONS:
        for name in _SECTION_FIELDS[section]:
            values[f"{section}.{name}"] = getattr(getattr(cfg, section), name)
    return values


def _build(values: Mapping[str, Any]) -> Config:
    """Flat {dotted key: value} (missing keys take defaults) -> validated Config."""
    sections = {}
    for section, cls in _SECTIONS.items():
        kwargs = {name: values[f"{section}.{name}"] for name in _SECTION_FIELDS[section] if f"{section}.{name}" in values}
        sections[section] = cls(**kwargs)
    top = {name: values[name] for name in _TOP_LEVEL_SCALARS if name in values}
    cfg = Config(**top, **sections)
    validate_config(cfg)
    return cfg


def _range_errors(cfg: Config) -> list[str]:
    """Human-readable messages for every impossible value outside `model` (whose bounds are
    `models.check_model_config`'s, checked by `validate_config` after these)."""
    errors = []

    def need(ok: bool, key: str, rule: str, value: Any) -> None:
        if not ok:
            errors.append(f"config key '{key}' must be {rule}, got {value!r}")

    if not cfg.output_dir.strip():
        errors.append("config key 'output_dir' must not be empty")
    if not cfg.data.root.strip():
        errors.append("config key 'data.root' must not be empty")
    if not cfg.data.cache_dir.strip():
        errors.append("config key 'data.cache_dir' must not be empty")
    for name in ("iterations", "batch_size", "save_every", "keep_checkpoints", "log_every", "sample_every",
                 "sample_count", "amp_max_skipped"):
        value = getattr(cfg.train, name)
        need(value > 0, f"train.{name}", "positive", value)
    need(cfg.data.num_workers >= 0, "data.num_workers", ">= 0", cfg.data.num_workers)
    need(cfg.train.save_generators_every >= 0, "train.save_generators_every", ">= 0 (0 = off)",
         cfg.train.save_generators_every)
    need(cfg.train.seed >= 0, "train.seed", ">= 0", cfg.train.seed)
    need(cfg.train.lr > 0, "train.lr", "> 0", cfg.train.lr)
    for name in ("beta1", "beta2"):
        value = getattr(cfg.train, name)
        need(0 <= value < 1, f"train.{name}", "in [0, 1)", value)
    need(cfg.train.weight_decay >= 0, "train.weight_decay", ">= 0", cfg.train.weight_decay)
    for name in _SECTION_FIELDS["loss"]:
        value = getattr(cfg.loss, name)
        need(value >= 0, f"loss.{name}", ">= 0", value)
    need(cfg.train.amp_dtype in AMP_DTYPES, "train.amp_dtype", f"one of {', '.join(AMP_DTYPES)}", cfg.train.amp_dtype)
    if cfg.train.amp and cfg.train.float64:
        errors.append("config keys 'train.amp' and 'train.float64' exclude each other (float16 kernels vs float64); "
                      "set one of them to false")
    return errors


def validate_config(cfg: Config) -> None:
    """Raise ConfigError if any value is impossible or the architecture cannot be built."""
    errors = _range_errors(cfg)
    if len(errors) == 1:
        raise ConfigError(errors[0])
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
    m = cfg.model
    try:
        check_model_config(m)
    except ValueError as exc:
        settings = ", ".join(f"model.{f.name}={getattr(m, f.name)!r}" for f in dataclasses.fields(m))
        raise ConfigError(f"invalid model architecture: {exc} (config has {settings})") from exc


def config_from_dict(data: Mapping[str, Any] | None, where: str = "") -> Config:
    """Build a validated Config from a (possibly partial) nested dict; missing keys take defaults."""
    values: dict[str, Any] = {}
    _merge_mapping(values, data, where)
    return _build(values)


CONFIGS_FOLDER = "configs"
_CLONE_CONFIGS = Path(__file__).resolve().parents[1] / CONFIGS_FOLDER


def resolve_config_path(path: str | Path) -> Path:
    """``path``, or for a missing ``configs/NAME.yaml`` the project's own file of that name: the copy installed
    inside the package (``ugatit_paddle/configs``), else the clone's ``configs/`` folder. So the README's
    ``-c configs/selfie2anime.yaml`` works from any working directory."""
    path = Path(path)
    if path.is_file() or len(path.parts) != 2 or path.parts[0] != CONFIGS_FOLDER:
        return path
    try:
        packaged = Path(str(importlib.resources.files("ugatit_paddle") / CONFIGS_FOLDER / path.name))
    except (ModuleNotFoundError, TypeError):
        packaged = None
    for candidate in (packaged, _CLONE_CONFIGS / path.name):
        if candidate is not None and candidate.is_file():
            return candidate
    return path


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> Config:
    """Defaults, then the YAML file at ``path`` (may be partial; None = defaults only), then overrides.

    ``overrides`` are ``section.key=value`` strings (``output_dir=...`` for the top-level key);
    values follow YAML scalar rules and must match the field type. Values are range-checked
    after the overrides, so an override may repair a value the file got wrong.
    """
    values: dict[str, Any] = {}
    if path is not None:
        file = resolve_config_path(path)
        if not file.is_file():
            raise ConfigError(f"config file '{file}' does not exist")
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file '{file}' is not valid YAML: {exc}") from exc
        _merge_mapping(values, data, f" (in config file '{file}')")
    _merge_overrides(values, overrides)
    return _build(values)


def save_config(cfg: Config, path: str | Path) -> None:
    """Write ``cfg`` as YAML (loadable with :func:`load_config`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")


def format_config(cfg: Config) -> str:
    """Readable multi-line rendering, one ``section.key = value`` per line."""
    values = _flatten(cfg)
    width = max(len(key) for key in values)
    return "\n".join(f"{key.ljust(width)} = {value!r}" for key, value in values.items())
