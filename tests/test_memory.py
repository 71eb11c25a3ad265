"""Memory figures: the smallest card a peak fits, what the weights and Adam state take."""

from __future__ import annotations

import paddle

from ugatit_paddle.training.memory import CARD_RESERVE_MIB, smallest_card_gb, weights_and_adam_mib


def test_smallest_card_leaves_room_for_the_cuda_context():
    assert smallest_card_gb(16 * 1024 - CARD_RESERVE_MIB) == 16
    assert smallest_card_gb(16 * 1024 - CARD_RESERVE_MIB + 1) == 24
    assert smallest_card_gb(200 * 1024) is None


def test_weights_and_adam_count_16_bytes_per_parameter():
    nets = {"a": paddle.nn.Linear(1024, 256), "b": paddle.nn.Conv2D(3, 8, 3)}  # 262400 and 224 parameters
    assert weights_and_adam_mib(nets) == (262400 + 224) * 16 / 2**20

