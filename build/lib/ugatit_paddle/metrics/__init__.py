"""Image-translation metrics of the paper: KID (x100 in reports), mean_KID and FID on FID-Inception features.

* :mod:`.kid`: the estimators on feature arrays (numpy only).
* :mod:`.inception`: the Paddle FID Inception-v3 and the image -> feature protocol.
* :func:`evaluate_folders`: folders of images -> all scores (what ``tools/eval_kid.py`` prints).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..data import find_images
from .inception import BATCH_SIZE, InceptionFeatureExtractor, InceptionWeightsError
from .kid import KID_MAX_BLOCK_SIZE, fid, kid, kid_blocks, mean_kid

__all__ = [
    "InceptionFeatureExtractor",
    "InceptionWeightsError",
    "FolderScores",
    "evaluate_folders",
    "fid",
    "kid",
    "mean_kid",
]


@dataclass(frozen=True)
class FolderScores:
    """Raw scores of fake images against real ones (multiply KID values by 100 to compare with the paper)."""

    kid: float
    kid_std: float
    fid: float
    mean_kid: float | None  # only with source images
    n_real: int
    n_fake: int
    n_source: int | None
    inception_weights: str

    def as_dict(self) -> dict[str, float | int | str | None]:
        """Raw values plus ``*_x100`` KID values; NaN becomes None (valid JSON)."""
        def clean(value: float | None) -> float | None:
            return None if value is None or not math.isfinite(value) else value

        def x100(value: float | None) -> float | None:
            return None if clean(value) is None else 100.0 * value

        return {
            "kid": clean(self.kid),
            "kid_std": clean(self.kid_std),
            "kid_x100": x100(self.kid),
            "kid_std_x100": x100(self.kid_std),
            "fid": clean(self.fid),
            "mean_kid": clean(self.mean_kid),
            "mean_kid_x100": x100(self.mean_kid),
            "n_real": self.n_real,
            "n_fake": self.n_fake,
            "n_source": self.n_source,
            "inception_weights": self.inception_weights,
        }


def evaluate_folders(
    real: str | Path,
    fake: str | Path,
    source: str | Path | None = None,
    weights_path: str | Path | None = None,
    batch_size: int = BATCH_SIZE,
    max_block_size: int = KID_MAX_BLOCK_SIZE,
) -> FolderScores:
    """KID(real, fake), FID(real, fake) and, with ``source``, mean_KID(source, real, fake).

    ``real``: real images of the output domain (e.g. testB), ``fake``: translations (A2B of
    testA), ``source``: the real input images (testA). Folder and block-size problems raise
    (DataError / ValueError) before the network is loaded; missing weights raise
    InceptionWeightsError.
    """
    n_fake = len(find_images(fake))
    kid_blocks(len(find_images(real)), n_fake, max_block_size)
    if source is not None:
        kid_blocks(len(find_images(source)), n_fake, max_block_size)

    extractor = InceptionFeatureExtractor(weights_path)
    real_feats, _ = extractor.folder_features(real, batch_size)
    fake_feats, _ = extractor.folder_features(fake, batch_size)
    kid_value, kid_std = kid(real_feats, fake_feats, max_block_size)
    mean_kid_value, n_source = None, None
    if source is not None:
        source_feats, _ = extractor.folder_features(source, batch_size)
        mean_kid_value = mean_kid(source_feats, real_feats, fake_feats, max_block_size)
        n_source = source_feats.shape[0]
    return FolderScores(
        kid=kid_value,
        kid_std=kid_std,
        fid=fid(real_feats, fake_feats),
        mean_kid=mean_kid_value,
        n_real=real_feats.shape[0],
        n_fake=fake_feats.shape[0],
        n_source=n_source,
        inception_weights=str(extractor.weights_path),
    )
