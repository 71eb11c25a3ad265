"""Get released U-GAT-IT weights in one command: download (or read your copy), convert, write a generator file.

    python tools/pretrained.py paddlegan-light                   # -> work/pretrained/paddlegan-light.pdparams
    python tools/pretrained.py tf-selfie2anime --from ~/Downloads/selfie2anime.zip     # the paper's model
    python tools/pretrained.py paddlegan-light --from ugatit_light.pdparams             # offline
    python tools/pretrained.py --list

Downloads are cached the PaddleGAN way (~/.cache/ppgan/<file>, --cache-dir) and are all or nothing: an HTTP
error, no network or a truncated file print one line and exit 1, and leave nothing half-written in the cache.
Then it prints the predict.py command for a photo. Exit status: 0 written, 1 error, 2 bad usage.
"""

import argparse
import sys

from ugatit_paddle import cli
from ugatit_paddle.download import CACHE_DIR, DownloadError, Progress
from ugatit_paddle.formats.checkpoint import CheckpointError
from ugatit_paddle.formats.tensorbundle import TensorBundleError
from ugatit_paddle.pretrained import RELEASES, PretrainedError, default_output, install, predict_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", choices=tuple(RELEASES), metavar="NAME",
                        help=f"release to get: {', '.join(RELEASES)}")
    parser.add_argument("-o", "--output", metavar="FILE", help="generator file to write (default "
                                                               "work/pretrained/NAME.pdparams)")
    parser.add_argument("--from", dest="source", metavar="PATH",
                        help="your downloaded copy (a .pdparams file; for tf-selfie2anime its zip or folder)")
    parser.add_argument("--url", help="download from this URL instead (a mirror)")
    parser.add_argument("--cache-dir", default=str(CACHE_DIR), help="download cache (default %(default)s)")
    parser.add_argument("--list", action="store_true", help="list the known releases and exit")
    a = parser.parse_args(argv)
    if a.list:
        for r in RELEASES.values():
            where = r.url or f"no direct link: {r.manual}"
            print(f"{r.name}: {r.description}\n    {where}")
        return cli.EXIT_OK
    if a.name is None:
        parser.error("name a release (--list shows them)")
    if a.source and a.url:
        parser.error("--from and --url exclude each other")

    def work() -> int:
        output = a.output or default_output(a.name)
        progress = Progress(f"downloading {a.name}")
        result = install(a.name, output, url=a.url, source=a.source, cache_dir=a.cache_dir, progress=progress)
        print(f"read {result.source}")
        return_code = cli.print_conversion(cli.architecture(result.model), result.notes, result.output)
        print(f"next: {predict_command(result.output)}")
        print(f"  or: python tools/app.py --checkpoint {result.output}")
        return return_code

    return cli.run(work, failures=(PretrainedError, DownloadError, CheckpointError, TensorBundleError, ValueError,
                                   OSError))


if __name__ == "__main__":
    sys.exit(main())
