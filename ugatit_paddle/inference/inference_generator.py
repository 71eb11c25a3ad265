"""The generator as exported for Paddle Inference: `Generator.forward` run as a static graph
(`inference/export.py` saves this layer).

There is no second definition of the network here: the graph is the generator's own blocks, traced by
`paddle.jit.to_static`. In a static graph `models/layers.py` and `models/norms.py` spell each step in the forms
Paddle Inference runs fastest, with oneDNN in particular (`models/static_forms.py`: reflection padding by slices,
up-sampling fused into the following convolution, CAM weights folded into the 1x1 convolution, reductions over
flattened planes). Results agree with the dynamic-mode generator to float32 rounding:
tests/test_inference_generator.py compares them in float64, tests/test_export.py compares the exported model
(with and without oneDNN) with the generator, and `tools/parity.py --precision` measures both against a
float64 evaluation.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn

from ..models.generator import Generator


class InferenceGenerator(nn.Layer):
    """`generator` (held as a sub-layer, so its parameters are this layer's) as a static graph: calling it, also
    eagerly, runs the static forms.

    `forward(x [N, 3, S, S])` returns `(image [N, 3, S, S], cam_logit [N, 2], heatmap [N, 1, S/4, S/4])`.
    """

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator

    @paddle.jit.to_static(full_graph=True)
    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        return self.generator(x)
