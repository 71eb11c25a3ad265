"""The official PyTorch U-GAT-IT state-dict keys that conversion and architecture inference rely on.

The Paddle networks use the official key names (`DownBlock.1.weight`, `UpBlock1_1.norm1.rho`, ...), so
converting a state dict is one table: every Linear weight listed here is transposed (`torch.nn.Linear`
stores [out, in], `paddle.nn.Linear` [in, out]); every other key is copied unchanged.
"""

from __future__ import annotations

import re

# Keys of Linear weights per network kind; the single source of truth for the layout transform.
LINEAR_WEIGHTS: dict[str, tuple[str, ...]] = {
    "generator": ("gap_fc.weight", "gmp_fc.weight", "FC.0.weight", "FC.2.weight", "gamma.weight", "beta.weight"),
    "discriminator": ("gap_fc.weight_orig", "gmp_fc.weight_orig"),
}

# Keys that reveal a generator's architecture: the first convolution's weight [ch, 3, 7, 7] and the MLP's
# first Linear weight (torch layout [out, in]: in = 4*ch for the light model, (img_size/4)^2 * 4*ch otherwise).
GENERATOR_FIRST_CONV = "DownBlock.1.weight"
GENERATOR_MLP_IN = "FC.0.weight"
GENERATOR_UP_RESBLOCK = re.compile(r"UpBlock1_(\d+)\.")  # one index per AdaILN residual block
DISCRIMINATOR_CONV = re.compile(r"model\.\d+\.weight_orig$")  # one per discriminator layer but the last
