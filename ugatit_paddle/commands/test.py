"""Translate the test sets with a trained checkpoint: testA -> B and testB -> A.

    python tools/test.py -c configs/selfie2anime.yaml                       # latest checkpoint in output_dir
    python tools/test.py -c configs/selfie2anime.yaml --checkpoint work/selfie2anime/checkpoints/iter_0100000.pdparams
    python tools/test.py -c configs/demo.yaml -o data.root=work/demo_data --batch-size 4

For each input <testA>/<rel>.<ext> it writes <out>/A2B/<rel>.png (the translation) and
<out>/A2B/strips/<rel>.png (the official 7-tile strip: real, CAM, identity, CAM, translation, CAM, cycle);
likewise B2A for testB. <out> is <output_dir>/test unless --output is given. The architecture comes from
the checkpoint; the config supplies data.root (a folder or a .zip) and output_dir.
Exit status: 0 done, 2 bad configuration, 1 other errors (no checkpoint, missing data, ...).
"""

import argparse
import sys
from pathlib import Path

from ugatit_paddle import cli
from ugatit_paddle.config import load_config
from ugatit_paddle.data import DataError
from ugatit_paddle.data.archive import resolve_data_root
from ugatit_paddle.formats.checkpoint import CHECKPOINT_DIR, CheckpointError, latest_checkpoint
from ugatit_paddle.inference.device import DeviceUnavailableError, add_device_argument, use_device
from ugatit_paddle.inference.translate import BATCH_SIZE, STRIPS_DIR, translate_test_set


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_config_arguments(parser, "data.root=dataset/x", "YAML config (data.root and output_dir are used)")
    parser.add_argument("--checkpoint", metavar="PATH", help="checkpoint to use (default: the latest in output_dir)")
    parser.add_argument("--output", metavar="DIR", help="where to write (default: <output_dir>/test)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="images per forward pass (default %(default)s)")
    add_device_argument(parser)
    a = parser.parse_args(argv)
    if a.batch_size < 1:
        parser.error("--batch-size must be >= 1")

    def work() -> int:
        cfg = load_config(a.config, a.override)
        use_device(a.device)
        ckpt = Path(a.checkpoint) if a.checkpoint else latest_checkpoint(cfg.output_dir)
        if ckpt is None:
            return cli.report_error(f"no checkpoint in {Path(cfg.output_dir) / CHECKPOINT_DIR}; train first "
                                    f"(tools/train.py) or pass --checkpoint PATH")
        out = Path(a.output) if a.output else Path(cfg.output_dir) / "test"
        print(f"checkpoint: {ckpt}")
        data_root = resolve_data_root(cfg.data.root, cfg.data.cache_dir)  # a zip is extracted once
        for r in translate_test_set(ckpt, data_root, out, batch_size=a.batch_size):
            skipped = f", skipped {len(r.skipped)} unreadable: {', '.join(map(str, r.skipped))}" if r.skipped else ""
            print(f"{r.direction}: translated {r.translated} images from {r.source_folder}{skipped} -> "
                  f"{r.output_folder} (strips in {r.output_folder / STRIPS_DIR})")
        return cli.EXIT_OK

    return cli.run(work, failures=(CheckpointError, DataError, OSError), usage=(DeviceUnavailableError,))


if __name__ == "__main__":
    sys.exit(main())
