"""The official PyTorch training iteration, run from a user's clone of UGATIT-pytorch: the one reference that
the parity checks (bundle rerun, live training) and the speed comparison all use.

`OfficialTraining` holds the six official networks (`networks.py` of the clone, imported by path, never
copied), the two Adams over the concatenated parameters (as `UGATIT.build_model`), and `step(real_A,
real_B)`, written out from `UGATIT.train`: the D step on fakes that are not detached, then the G step
recomputing the fakes, LSGAN / L1 / BCE-with-logits losses with the configured weights, and rho clipped to
[0, 1] with the official `RhoClipper`. In float64 the networks (spectral-norm u/v included), the batch and
Adam's state are all float64, as `.double()` makes them.

torch is imported inside the functions, so importing this module never needs it.
"""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..config import LossConfig, ModelConfig, TrainConfig
from ..models import DISCRIMINATORS, GENERATORS  # the official key names; DISCRIMINATORS in D_optim's order
from .checks import OUTPUTS


class TorchUnavailable(RuntimeError):
    """The official reference needs PyTorch and a clone of UGATIT-pytorch (its networks.py)."""


def import_torch(what: str = "this check") -> ModuleType:
    try:
        import torch
    except ImportError as e:
        raise TorchUnavailable(f"{what} needs PyTorch (pip install torch); bundle mode (--bundle) works without it") from e
    return torch


def import_official_networks(torch_src: str | Path) -> ModuleType:
    """The official `networks.py` of a UGATIT-pytorch clone, imported by path."""
    path = Path(torch_src).expanduser() / "networks.py"
    if not path.is_file():
        raise TorchUnavailable(f"{path} not found: --torch-src must be a clone of UGATIT-pytorch")
    import_torch("the official networks.py")
    spec = importlib.util.spec_from_file_location("ugatit_official_networks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Recipe:
    """The official optimiser settings and loss weights (UGATIT-pytorch's main.py defaults, which are the
    config defaults)."""

    lr: float = TrainConfig.lr
    beta1: float = TrainConfig.beta1
    beta2: float = TrainConfig.beta2
    weight_decay: float = TrainConfig.weight_decay
    adv_weight: float = LossConfig.adv_weight
    cycle_weight: float = LossConfig.cycle_weight
    identity_weight: float = LossConfig.identity_weight
    cam_weight: float = LossConfig.cam_weight

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Recipe":
        """From a bundle's reference.json (or any dict with these keys; missing keys keep the defaults)."""
        return cls(**{k: float(values[k]) for k in cls.__dataclass_fields__ if k in values})


class OfficialTraining:
    """The official networks, optimisers and training iteration in `dtype` ("float32" or "float64").

    `states`: official state dicts (`{network: {key: array}}`, torch layout, e.g. `load_torch(ckpt)`), cast to
    `dtype`; without them the networks keep torch's random initialisation under `seed`.
    """

    def __init__(self, torch_src: str | Path, img_size: int, ch: int, n_res: int, light: bool,
                 global_layers: int = ModelConfig.global_layers, local_layers: int = ModelConfig.local_layers, dtype: str = "float32",
                 states: Mapping[str, Mapping[str, Any]] | None = None, recipe: Recipe = Recipe(),
                 threads: int | None = None, seed: int = 0) -> None:
        torch = import_torch("the official reference iteration")
        networks = import_official_networks(torch_src)
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.torch, self.recipe = torch, recipe
        self.dtype = getattr(torch, dtype)
        self.nets = {n: networks.ResnetGenerator(3, 3, ch, n_res, img_size, light) for n in GENERATORS}
        self.nets.update({n: networks.Discriminator(3, ch, global_layers if n.startswith("disG") else local_layers)
                          for n in DISCRIMINATORS})
        for name, net in self.nets.items():
            net.to(self.dtype)
            if states is not None:
                if name not in states:
                    raise ValueError(f"the official weights have no {name}")
                net.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=dtype)) for k, v in states[name].items()})
            net.train()
        adam = dict(lr=recipe.lr, betas=(recipe.beta1, recipe.beta2), weight_decay=recipe.weight_decay)
        self.G_optim = torch.optim.Adam(itertools.chain(*(self.nets[n].parameters() for n in GENERATORS)), **adam)
        self.D_optim = torch.optim.Adam(itertools.chain(*(self.nets[n].parameters() for n in DISCRIMINATORS)), **adam)
        self.rho_clipper = networks.RhoClipper(0, 1)
        self.mse, self.l1, self.bce = torch.nn.MSELoss(), torch.nn.L1Loss(), torch.nn.BCEWithLogitsLoss()

    def tensor(self, x: Any) -> Any:
        """numpy array or torch tensor -> torch tensor of this dtype."""
        t = x if isinstance(x, self.torch.Tensor) else self.torch.from_numpy(np.asarray(x))
        return t.to(self.dtype)

    def images(self, batch: int, img_size: int, seed: int) -> Any:
        """Uniform random images in [-1, 1], [batch, 3, S, S], of this dtype."""
        generator = self.torch.Generator().manual_seed(seed)
        return (self.torch.rand(batch, 3, img_size, img_size, generator=generator) * 2 - 1).to(self.dtype)

    def step(self, real_A: Any, real_B: Any) -> tuple[float, float]:
        """One official training iteration; returns the total (D, G) losses."""
        torch, r, n = self.torch, self.recipe, self.nets
        mse, l1, bce = self.mse, self.l1, self.bce
        real_A, real_B = self.tensor(real_A), self.tensor(real_B)
        ones, zeros = torch.ones_like, torch.zeros_like

        def d_terms(dis: Any, real: Any, fake: Any) -> Any:  # D_ad_loss + D_ad_cam_loss of one discriminator
            real_logit, real_cam, _ = dis(real)
            fake_logit, fake_cam, _ = dis(fake)
            return (mse(real_logit, ones(real_logit)) + mse(fake_logit, zeros(fake_logit)),
                    mse(real_cam, ones(real_cam)) + mse(fake_cam, zeros(fake_cam)))

        def g_terms(dis: Any, fake: Any) -> Any:
            logit, cam, _ = dis(fake)
            return mse(logit, ones(logit)), mse(cam, ones(cam))

        self.D_optim.zero_grad()
        fake_A2B, _, _ = n["genA2B"](real_A)
        fake_B2A, _, _ = n["genB2A"](real_B)
        ga, la = d_terms(n["disGA"], real_A, fake_B2A), d_terms(n["disLA"], real_A, fake_B2A)
        gb, lb = d_terms(n["disGB"], real_B, fake_A2B), d_terms(n["disLB"], real_B, fake_A2B)
        D_loss = r.adv_weight * (ga[0] + ga[1] + la[0] + la[1]) + r.adv_weight * (gb[0] + gb[1] + lb[0] + lb[1])
        D_loss.backward()
        self.D_optim.step()

        self.G_optim.zero_grad()
        fake_A2B, fake_A2B_cam, _ = n["genA2B"](real_A)
        fake_B2A, fake_B2A_cam, _ = n["genB2A"](real_B)
        fake_A2B2A, _, _ = n["genB2A"](fake_A2B)
        fake_B2A2B, _, _ = n["genA2B"](fake_B2A)
        fake_A2A, fake_A2A_cam, _ = n["genB2A"](real_A)
        fake_B2B, fake_B2B_cam, _ = n["genA2B"](real_B)
        ga, la = g_terms(n["disGA"], fake_B2A), g_terms(n["disLA"], fake_B2A)
        gb, lb = g_terms(n["disGB"], fake_A2B), g_terms(n["disLB"], fake_A2B)
        cam_A = bce(fake_B2A_cam, ones(fake_B2A_cam)) + bce(fake_A2A_cam, zeros(fake_A2A_cam))
        cam_B = bce(fake_A2B_cam, ones(fake_A2B_cam)) + bce(fake_B2B_cam, zeros(fake_B2B_cam))
        G_loss_A = (r.adv_weight * (ga[0] + ga[1] + la[0] + la[1]) + r.cycle_weight * l1(fake_A2B2A, real_A)
                    + r.identity_weight * l1(fake_A2A, real_A) + r.cam_weight * cam_A)
        G_loss_B = (r.adv_weight * (gb[0] + gb[1] + lb[0] + lb[1]) + r.cycle_weight * l1(fake_B2A2B, real_B)
                    + r.identity_weight * l1(fake_B2B, real_B) + r.cam_weight * cam_B)
        G_loss = G_loss_A + G_loss_B
        G_loss.backward()
        self.G_optim.step()
        for name in GENERATORS:
            n[name].apply(self.rho_clipper)
        return float(D_loss.item()), float(G_loss.item())

    def save(self, path: str | Path) -> None:
        """The six networks' state dicts in one file, as the official `UGATIT.save()` writes them (torch.save of
        `{network: state_dict}`; spectral-norm layers keep `weight_orig`, `weight_u`, `weight_v`)."""
        self.torch.save({name: net.state_dict() for name, net in self.nets.items()}, str(path))

    def state_dicts(self) -> dict[str, dict[str, np.ndarray]]:
        """Every network's official state dict as numpy (torch layout; spectral-norm u/v included)."""
        return {name: {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
                for name, net in self.nets.items()}

    def eval_outputs(self, x: Any) -> dict[str, np.ndarray]:
        """`{"<net>.<output>": array}` of every network in eval mode on `x` (then back to train mode)."""
        results = {}
        with self.torch.no_grad():
            for name, net in self.nets.items():
                net.eval()
                for output, value in zip(OUTPUTS, net(self.tensor(x))):
                    results[f"{name}.{output}"] = value.numpy()
                net.train()
        return results

    def train_forward(self, name: str, x: Any) -> list[np.ndarray]:
        """One train-mode forward of one network without gradients (advances a discriminator's power iteration)."""
        with self.torch.no_grad():
            return [t.numpy() for t in self.nets[name](self.tensor(x))]
