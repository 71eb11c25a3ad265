"""Convert official UGATIT-pytorch checkpoints to this project's format, and back. PyTorch is not needed.

    python tools/convert_torch.py official_params_1000000.pt -o model.pdparams
    python tools/convert_torch.py halved_fp16.pt -o model.pdparams --dtype float32   # default: keep the stored dtype
    python tools/convert_torch.py genA2B_only.pt --net genA2B -o genA2B.pdparams
    python tools/convert_torch.py --to-torch work/selfie2anime/checkpoints/iter_0100000.pdparams -o official.pt

Exit status: 0 written, 1 error, 2 bad usage.
"""

import argparse
import sys

from ugatit_paddle import cli
from ugatit_paddle.formats.official import FLOAT_DTYPES, convert_file, export_official_file
from ugatit_paddle.models import NETWORKS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_conversion_arguments(parser, "official .pt file (or, with --to-torch, a project .pdparams file)",
                                 "file to write")
    parser.add_argument("--net", choices=NETWORKS, help="the input is this one network's state dict")
    parser.add_argument("--dtype", choices=FLOAT_DTYPES,
                        help="store the weights in this dtype (default: as in the input; bfloat16 is read as float32)")
    parser.add_argument("--to-torch", action="store_true", help="project checkpoint -> official .pt format")
    a = parser.parse_args(argv)

    def work() -> int:
        if a.to_torch:
            args = export_official_file(a.input, a.output)
            print(f"wrote {a.output}: {args}")
            return cli.EXIT_OK
        args, notes = convert_file(a.input, a.output, net=a.net, img_size=a.img_size, dtype=a.dtype)
        return cli.print_conversion(cli.architecture(args), notes, a.output)

    return cli.run(work, failures=(OSError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
