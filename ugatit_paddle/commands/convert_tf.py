"""Convert a checkpoint of the official TensorFlow U-GAT-IT code (taki0112/UGATIT) to this project's format.
TensorFlow is not needed; the `.meta` graph file is not read.

    python tools/convert_tf.py checkpoint/UGATIT_selfie2anime_lsgan_4resblock_6dis_1_1_10_10_1000_sn_smoothing \
        -o work/ugatit_tf_selfie2anime.pdparams
    python tools/convert_tf.py path/to/UGATIT_light.model-1000000 -o light.pdparams --img-size 256

CKPT is a checkpoint prefix (`.../UGATIT.model-1000000`), one of its files, or its folder. The result uses
the TF-compatible networks (model.variant: tf) and works with predict.py, test.py, export_model.py and
`train.py --resume FILE` (fine-tuning from these weights with a new optimiser; pass the same model settings:
-o model.variant=tf ...). Exit status: 0 written, 1 error.
"""

import argparse
import sys

from ugatit_paddle import cli
from ugatit_paddle.formats.tf import convert_file, describe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_conversion_arguments(parser, "TF checkpoint prefix, one of its files, or its folder", input_name="CKPT")
    parser.add_argument("--smoothing", action=argparse.BooleanOptionalAction, default=None,
                        help="the TF --smoothing flag the model was trained with (default: from the official folder "
                             "name, else on)")
    a = parser.parse_args(argv)

    def work() -> int:
        args, notes = convert_file(a.input, a.output, img_size=a.img_size, smoothing=a.smoothing)
        return cli.print_conversion(describe(args), notes, a.output)

    return cli.run(work, failures=(OSError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
