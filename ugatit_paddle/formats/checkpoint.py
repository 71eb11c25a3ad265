"""The project's checkpoint files: what they hold, how they are written and found.

A checkpoint is one `paddle.save` file (`.pdparams`) holding a dict:

    format: "ugatit_paddle", version: 1,
    model_args: the ModelConfig fields {img_size, ch, n_res, light, global_layers, local_layers, variant,
                tf_smoothing, tf_sn} (a file without the last three holds official networks),
    networks: {genA2B: {key: ndarray}, ..., disLB: {...}}      (any subset; Paddle layout)
    # training checkpoints only:
    iteration: completed iterations, config: the resolved config dict,
    optimizers: {G: adam state, D: adam state}, lr_scheduler: {...}
    # generator files (`save_generators`: for sharing and deployment) only:
    kind: "generators", networks: {genA2B, genB2A} (float32 or float16), iteration (when known)

Training draws no random numbers after initialisation except the data augmentation, which is keyed by
(seed, sample number) (see `data/images.py`), so `iteration` is all the RNG state an exact resume needs.

Files are written atomically (temporary file in the same folder, fsync, rename), so an interrupted or
failed save never damages the previous checkpoint, and read with the restricted unpickler of
`safe_pickle` (never executing pickled code).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import paddle

from ..config import ModelConfig
from ..models import GENERATORS, NETWORKS, build_networks
from .safe_pickle import CheckpointFormatError, UnsafePickleError, load_paddle_file

FORMAT, VERSION = "ugatit_paddle", 1
CHECKPOINT_DIR = "checkpoints"
GENERATORS_DIR = "generators"  # train.save_generators_every writes generator files here
GENERATOR_DTYPES = ("float32", "float16")
_FILE_NAME = re.compile(r"^iter_(\d{7,})\.pdparams$")  # what `iteration_file_name` writes


def iteration_file_name(iteration: int) -> str:
    """The file name of a training checkpoint or generator file of `iteration`: 'iter_0001000.pdparams'."""
    return f"iter_{iteration:07d}.pdparams"


def iteration_of(file_name: str) -> int | None:
    """The iteration in an `iteration_file_name` name; None for any other name."""
    match = _FILE_NAME.match(file_name)
    return int(match.group(1)) if match else None


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, written or used; the message names the file and what to do."""


def to_numpy(obj: Any) -> Any:
    """Nested containers with paddle Tensors -> the same with numpy arrays."""
    if isinstance(obj, paddle.Tensor):
        return obj.numpy()
    if isinstance(obj, Mapping):
        return {k: to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_numpy(v) for v in obj)
    return obj


def model_payload(model: ModelConfig, networks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The part every checkpoint has: format tag, architecture and network weights (numpy)."""
    return {"format": FORMAT, "version": VERSION, "model_args": dataclasses.asdict(model),
            "networks": {name: to_numpy(dict(state)) for name, state in networks.items()}}


def save(payload: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write `payload` to `path` atomically; on failure (disk full, ...) the old file is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        paddle.save(dict(payload), str(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        hint = " (the disk is full)" if e.errno == errno.ENOSPC else ""
        raise CheckpointError(f"could not write checkpoint {path}{hint}: {e.strerror or e}; "
                              f"any previous checkpoint is unchanged") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by `save`; raises CheckpointError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix in (".pt", ".pth"):
        raise CheckpointError(f"{path} looks like a PyTorch file; convert it first: "
                              f"python tools/convert_torch.py {path} -o {path.with_suffix('.pdparams')}")
    try:
        payload = load_paddle_file(path)
    except UnsafePickleError:
        raise
    except CheckpointFormatError as e:
        raise CheckpointError(str(e)) from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} checkpoint (no format tag); for official PyTorch "
                              f"weights use tools/convert_torch.py")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}, this code reads {VERSION}")
    return payload


def model_config_of(payload: Mapping[str, Any]) -> ModelConfig:
    """The architecture a checkpoint was written for."""
    return ModelConfig(**payload["model_args"])


def save_generators(path: str | os.PathLike[str], model: ModelConfig, networks: Mapping[str, Any],
                    dtype: str = "float32", iteration: int | None = None) -> Path:
    """Write the two generators only (a third of a training checkpoint of the full model, a few percent of a
    light one; float16 halves that): what `Translator`, predict.py, test.py and export_model.py need.

    `networks` maps at least genA2B and genB2A to layers or state dicts; the others are ignored."""
    if dtype not in GENERATOR_DTYPES:
        raise CheckpointError(f"generator file dtype must be one of {', '.join(GENERATOR_DTYPES)}, got {dtype!r}")
    missing = [n for n in GENERATORS if n not in networks]
    if missing:
        raise CheckpointError(f"cannot write a generator file without {', '.join(missing)}")
    states = {}
    for name in GENERATORS:
        state = networks[name]
        state = to_numpy(dict(state.state_dict() if isinstance(state, paddle.nn.Layer) else state))
        states[name] = {k: np.asarray(v).astype(dtype) if np.issubdtype(np.asarray(v).dtype, np.floating) else v
                        for k, v in state.items()}
    payload = model_payload(model, states)
    payload["kind"] = "generators"
    if iteration is not None:
        payload["iteration"] = int(iteration)
    return save(payload, path)


def extract_generators(checkpoint_path: str | os.PathLike[str], output_path: str | os.PathLike[str],
                       dtype: str = "float32") -> Path:
    """The generator file (see `save_generators`) of any project checkpoint."""
    payload = load(checkpoint_path)
    missing = [n for n in GENERATORS if n not in payload["networks"]]
    if missing:
        raise CheckpointError(f"{checkpoint_path} has no weights for {', '.join(missing)}")
    return save_generators(output_path, model_config_of(payload), payload["networks"], dtype, payload.get("iteration"))


def generators_path(output_dir: str | os.PathLike[str], iteration: int) -> Path:
    """Where `train.save_generators_every` writes the generator file of `iteration`."""
    return Path(output_dir) / GENERATORS_DIR / iteration_file_name(iteration)


def save_model(path: str | os.PathLike[str], model: ModelConfig, networks: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write network weights only (what the converter and `export` produce)."""
    return save(model_payload(model, networks), path)


def load_networks(nets: Mapping[str, paddle.nn.Layer], payload: Mapping[str, Any], path: str = "checkpoint",
                  required: tuple[str, ...] = NETWORKS) -> None:
    """Copy the checkpoint's weights into `nets`, after checking every key and shape.

    Raises CheckpointError listing the first mismatched keys and shapes (e.g. a light checkpoint loaded into
    a full model).
    """
    stored = payload["networks"]
    missing = [n for n in required if n in nets and n not in stored]
    if missing:
        raise CheckpointError(f"{path} has no weights for {', '.join(missing)}")
    for name, net in nets.items():
        if name not in stored:
            continue
        problems = mismatches(stored[name], {k: tuple(v.shape) for k, v in net.state_dict().items()})
        if problems:
            raise CheckpointError(f"{path} does not fit this model: it holds {model_config_of(payload)}; "
                                  f"{name}: {problems}")
    _set_states(nets, stored, path)


def _set_states(nets: Mapping[str, paddle.nn.Layer], stored: Mapping[str, Mapping[str, Any]], path: str) -> None:
    """Load each network's stored arrays, cast to the dtype of the layer's own tensors (float32, or float64
    under `train.float64`): checkpoints halved to float16 (or stored in float64 / bfloat16-as-float32) load into
    any model, with one line saying so."""
    casts: dict[tuple[str, str], int] = {}
    for name, net in nets.items():
        if name not in stored:
            continue
        state = {}
        for key, tensor in net.state_dict().items():
            value = np.asarray(stored[name][key])
            want = np.dtype(paddle_dtype_name(tensor.dtype))
            if value.dtype != want:
                casts[(str(value.dtype), str(want))] = casts.get((str(value.dtype), str(want)), 0) + 1
                value = value.astype(want)
            state[key] = value
        net.set_state_dict(state)
    for (src, dst), count in casts.items():
        print(f"note: {path} stores {src} weights; loaded as {dst} ({count} tensors cast)", file=sys.stderr)


def paddle_dtype_name(dtype: Any) -> str:
    """paddle.float32 / VarType.FP32 / DataType.FLOAT32 -> 'float32' (Paddle 2.6 and 3.x spell them differently)."""
    name = str(dtype).lower().rsplit(".", 1)[-1]
    return {"fp32": "float32", "fp64": "float64", "fp16": "float16", "bf16": "bfloat16"}.get(name, name)


def load_generators(path: str | os.PathLike[str], names: Sequence[str] = GENERATORS) -> tuple[ModelConfig, dict[str, paddle.nn.Layer]]:
    """Build only the networks `names` (e.g. one generator) with the architecture stored in the checkpoint at
    `path` and load their weights (eval mode). Raises CheckpointError for a missing/unreadable file or missing
    weights."""
    payload = load(path)
    model = model_config_of(payload)
    nets = build_networks(model, tuple(names))
    load_networks(nets, payload, str(path), required=tuple(names))
    for net in nets.values():
        net.eval()
    return model, nets


def mismatches(state: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]], limit: int = 5) -> str:
    """'' if `state` has exactly the `expected` keys and shapes, else the first `limit` problems, readable."""
    problems = [f"missing key '{k}' (expected shape {list(s)})" for k, s in expected.items() if k not in state]
    problems += [f"unexpected key '{k}'" for k in state if k not in expected]
    problems += [f"'{k}' has shape {list(np.shape(state[k]))}, expected {list(s)}"
                 for k, s in expected.items() if k in state and tuple(np.shape(state[k])) != s]
    more = f"; and {len(problems) - limit} more" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more


# ---------------------------------------------------------------------------- training checkpoints
def checkpoint_path(output_dir: str | os.PathLike[str], iteration: int) -> Path:
    """Where the training checkpoint of `iteration` is written."""
    return Path(output_dir) / CHECKPOINT_DIR / iteration_file_name(iteration)


def list_checkpoints(output_dir: str | os.PathLike[str], folder: str = CHECKPOINT_DIR) -> list[tuple[int, Path]]:
    """(iteration, path) of the training checkpoints (or, folder=GENERATORS_DIR, generator files) in
    `output_dir`, oldest first."""
    folder = Path(output_dir) / folder
    if not folder.is_dir():
        return []
    found = [(it, p) for p in folder.iterdir() if (it := iteration_of(p.name)) is not None]
    return sorted(found)


def latest_checkpoint(output_dir: str | os.PathLike[str]) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def prune(output_dir: str | os.PathLike[str], keep: int, folder: str = CHECKPOINT_DIR) -> None:
    """Delete all but the `keep` newest training checkpoints (or generator files, folder=GENERATORS_DIR)."""
    for _, path in list_checkpoints(output_dir, folder)[:-keep]:
        path.unlink(missing_ok=True)
