"""Convert PaddleGAN U-GAT-IT weights (`ugatit_light.pdparams`, `epoch_N_weight.pdparams`,
`epoch_N_checkpoint.pdparams`) to this project's format. The file is read with a restricted unpickler.

    python tools/convert_paddlegan.py ugatit_light.pdparams -o work/ugatit_light.pdparams --img-size 256

PaddleGAN's frozen InstanceNorm scale/bias must be exactly 1/0 (they are in files PaddleGAN trained);
otherwise the file is refused, and --force drops them anyway. Exit status: 0 written, 1 error.
"""

import argparse
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from ugatit_paddle.runtime import configure_cpu  # noqa: E402  (before paddle is imported)

configure_cpu()

from ugatit_paddle.formats.paddlegan import convert_file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="PaddleGAN .pdparams file")
    parser.add_argument("-o", "--output", required=True, help=".pdparams file to write")
    parser.add_argument("--img-size", type=int, help="training image size (only needed for light models; default 256)")
    parser.add_argument("--force", action="store_true",
                        help="drop InstanceNorm scale/bias even where they are not 1/0 (changes the outputs)")
    a = parser.parse_args()
    try:
        args, notes = convert_file(a.input, a.output, img_size=a.img_size, force=a.force)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"architecture: light={args.light} ch={args.ch} n_res={args.n_res} img_size={args.img_size} "
          f"discriminator layers global={args.global_layers} local={args.local_layers}")
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
