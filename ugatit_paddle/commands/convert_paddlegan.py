"""Convert PaddleGAN U-GAT-IT weights (`ugatit_light.pdparams`, `epoch_N_weight.pdparams`,
`epoch_N_checkpoint.pdparams`) to this project's format. The file is read with a restricted unpickler.

    python tools/convert_paddlegan.py ugatit_light.pdparams -o work/ugatit_light.pdparams --img-size 256

PaddleGAN's frozen InstanceNorm scale/bias must be exactly 1/0 (they are in files PaddleGAN trained);
otherwise the file is refused, and --force drops them anyway. Exit status: 0 written, 1 error.
"""

import argparse
import sys

from ugatit_paddle import cli
from ugatit_paddle.formats.paddlegan import convert_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_conversion_arguments(parser, "PaddleGAN .pdparams file")
    parser.add_argument("--force", action="store_true",
                        help="drop InstanceNorm scale/bias even where they are not 1/0 (changes the outputs)")
    a = parser.parse_args(argv)

    def work() -> int:
        args, notes = convert_file(a.input, a.output, img_size=a.img_size, force=a.force)
        return cli.print_conversion(cli.architecture(args), notes, a.output)

    return cli.run(work, failures=(OSError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
