"""Prove numerical agreement with the official UGATIT-pytorch code.

Bundle mode (no PyTorch needed): a parity bundle recorded from the official code (tools/record_bundle.py),
checked in the bundle's dtype (reference.json "dtype"; float64 bundles are converted, built and trained in
float64) against the limits of ugatit_paddle/parity/checks.py for that dtype; the repository's bundles:
    python tools/parity.py --bundle tests/fixtures/full_32_ch2_f64 --steps 3 [--json | --markdown]
Bundles recorded with the official TensorFlow code or PaddleGAN's code (recognised by their files; eval outputs
against the limits of their READMEs):
    python tools/parity.py --bundle ../shared/fixtures/tf/full_64_ch8
The README's tables: every bundle with all its recorded steps, one Markdown row each
    python tools/parity.py --bundles tests/fixtures/*/
    python tools/parity.py --bundles ../shared/fixtures/*/*/
Live mode (needs torch and a clone of UGATIT-pytorch): the official code beside ours on your checkpoint;
--steps K runs K training iterations of both on one batch (from --images, else random), --float64 in float64
(the only dtype in which a full model's training trajectory is comparable)
    python tools/parity.py --torch-ckpt official.pt --torch-src ~/UGATIT-pytorch [--images DIR] [--float64 --steps 3]
The official code against its own recording (needs torch and the clone; shows how reproducible a bundle is):
    python tools/parity.py --bundle DIR --official-rerun --torch-src ~/UGATIT-pytorch [--threads 1]
Float32 precision of the generator, eager and exported, against a float64 evaluation (official too with --torch-src):
    python tools/parity.py --precision --img-size 256 --ch 64 --light [--torch-src ~/UGATIT-pytorch]
Output: a table (default), --markdown (as a Markdown table), --summary (one line per kind of check; with
--markdown the README's table) or --json (one line:
{"bundle", "source", "dtype", "steps", "rows": [{"check", "network", "output", "max_abs", "value", "limit", "ok"}],
"passed", "failed", "notes"}). Exit status: 0 all within the limits, 1 some value outside, 2 bad usage.
"""

import argparse
import sys

from ugatit_paddle import cli, parity
from ugatit_paddle.config import ModelConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", help="folder of a parity bundle (reference.json, init_params.pt, ...)")
    parser.add_argument("--bundles", nargs="+", metavar="DIR",
                        help="several bundles, each with all its recorded steps: one Markdown row per bundle "
                             "(the README's table)")
    parser.add_argument("--steps", type=int, default=0, help="also run K training iterations (bundle and live mode)")
    parser.add_argument("--torch-ckpt", help="official checkpoint for live mode")
    parser.add_argument("--torch-src", help="clone of UGATIT-pytorch (its networks.py) for live mode, "
                                            "--official-rerun and --precision")
    parser.add_argument("--float64", action="store_true",
                        help="live mode: run both sides in float64 (networks, batch, Adam) with the float64 limits")
    parser.add_argument("--images", help="live mode: folder of images to feed (default: random inputs)")
    parser.add_argument("--batch", type=int, default=1, help="live mode with --steps: images per domain and batch")
    parser.add_argument("--img-size", type=int, help="image size for light checkpoints (live mode) or --precision "
                                                       f"(default {ModelConfig.img_size})")
    parser.add_argument("--official-rerun", action="store_true",
                        help="bundle mode: rerun the official code (torch) through the bundle's steps instead of ours")
    parser.add_argument("--threads", type=int, help="torch threads for --official-rerun and live mode")
    parser.add_argument("--precision", action="store_true",
                        help="float32 vs float64 evaluation of a random generator (eager, exported, official)")
    parser.add_argument("--ch", type=int, help=f"generator width for --precision (default {ModelConfig.ch})")
    parser.add_argument("--n-res", type=int, help=f"residual blocks for --precision (default {ModelConfig.n_res})")
    parser.add_argument("--light", action="store_true", help="light generator for --precision")
    parser.add_argument("--train-forwards", type=int, default=3,
                        help="live mode without --steps: train-mode forwards per network (power iterations advance)")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--markdown", action="store_true", help="print the rows (with --summary: the summary) "
                                                                "as a Markdown table")
    parser.add_argument("--summary", action="store_true", help="print one line per kind of check (its worst row)")
    a = parser.parse_args(argv)
    if a.bundles:
        return _bundles_table(a.bundles)
    if a.precision + bool(a.bundle) + bool(a.torch_ckpt) != 1:
        parser.error("give one of --bundle DIR, --torch-ckpt FILE --torch-src DIR, or --precision")
    if a.float64 and not a.torch_ckpt:
        parser.error("--float64 is for live mode (--torch-ckpt); a bundle's dtype comes from its reference.json, "
                     "and the float32-vs-float64 check of a random generator is --precision")
    if a.json and (a.markdown or a.summary):
        parser.error("--json prints every row; it does not combine with --markdown or --summary")
    if a.steps < 0:
        parser.error("--steps must be >= 0")
    try:
        if a.precision:
            given = {"img_size": a.img_size, "ch": a.ch, "n_res": a.n_res}
            args = ModelConfig(light=a.light, **{name: value for name, value in given.items() if value is not None})
            report = parity.precision_check(args, torch_src=a.torch_src)
        elif a.bundle and a.official_rerun:
            if not a.torch_src:
                parser.error("--official-rerun needs --torch-src (a clone of UGATIT-pytorch with networks.py)")
            report = parity.official_rerun(a.bundle, a.torch_src, threads=a.threads)
        elif a.bundle:
            report = parity.check_bundle(a.bundle, steps=a.steps)
        else:
            if not a.torch_src:
                parser.error("live mode needs --torch-src (a clone of UGATIT-pytorch with networks.py)")
            report = parity.live_parity(a.torch_ckpt, a.torch_src, images=a.images, img_size=a.img_size,
                                        train_forwards=a.train_forwards, steps=a.steps, float64=a.float64,
                                        batch=a.batch, threads=a.threads)
    except (parity.TorchUnavailable, OSError, ValueError) as e:
        return cli.report_error(e, cli.EXIT_USAGE)
    if a.json:
        print(parity.format_json(report))
    elif a.summary:
        print(parity.format_summary(report, markdown=a.markdown))
    elif a.markdown:
        print(parity.format_markdown(report.rows, report.notes))
    else:
        print(parity.format_table(report.rows, report.notes))
    return 0 if report.ok else 1


def _bundles_table(folders: list[str]) -> int:
    try:
        reports = [parity.check_bundle(folder, steps=None) for folder in folders]
    except (OSError, ValueError) as e:
        return cli.report_error(e, cli.EXIT_USAGE)
    print(parity.format_bundles_markdown(reports))
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
