"""Convert official UGATIT-pytorch checkpoints to this project's format, and back. PyTorch is not needed.

    python tools/convert_torch.py official_params_1000000.pt -o model.pdparams
    python tools/convert_torch.py halved_fp16.pt -o model.pdparams --dtype float32   # default: keep the stored dtype
    python tools/convert_torch.py genA2B_only.pt --net genA2B -o genA2B.pdparams
    python tools/convert_torch.py --to-torch work/selfie2anime/checkpoints/iter_0100000.pdparams -o official.pt
"""

import argparse
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from ugatit_paddle.runtime import configure_cpu  # noqa: E402  (before paddle is imported)

configure_cpu()

from ugatit_paddle.formats.official import FLOAT_DTYPES, convert_file, export_official_file
from ugatit_paddle.models import NETWORKS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="official .pt file (or, with --to-torch, a project .pdparams file)")
    parser.add_argument("-o", "--output", required=True, help="file to write")
    parser.add_argument("--net", choices=NETWORKS, help="the input is this one network's state dict")
    parser.add_argument("--img-size", type=int, help="training image size (only needed for light models)")
    parser.add_argument("--dtype", choices=FLOAT_DTYPES,
                        help="store the weights in this dtype (default: as in the input; bfloat16 is read as float32)")
    parser.add_argument("--to-torch", action="store_true", help="project checkpoint -> official .pt format")
    a = parser.parse_args()
    try:
        if a.to_torch:
            args = export_official_file(a.input, a.output)
            print(f"wrote {a.output}: {args}")
        else:
            args, notes = convert_file(a.input, a.output, net=a.net, img_size=a.img_size, dtype=a.dtype)
            print(f"architecture: light={args.light} ch={args.ch} n_res={args.n_res} img_size={args.img_size} "
                  f"discriminator layers global={args.global_layers} local={args.local_layers}")
            for note in notes:
                print(f"note: {note}")
            print(f"wrote {a.output}")
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
