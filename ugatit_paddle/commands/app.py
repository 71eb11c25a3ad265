"""A page in the browser to try a model on your photo: upload or webcam, faces found and aligned, each face's
translation and CAM heatmap. Needs Gradio (pip install "gradio==6.31.0", or the package's `app` extra).

    python tools/app.py                                  # newest work/pretrained/*.pdparams, else the demo model
    python tools/app.py --checkpoint work/pretrained/paddlegan-light.pdparams
    python tools/app.py --inference-model exported/ --port 8080
    python tools/app.py --host 0.0.0.0                   # reachable from other machines (e.g. an AI Studio app)

Open http://127.0.0.1:7860 (the address it prints). Ctrl-C stops it. Exit status: 0 stopped, 1 no model or
Gradio missing, 2 bad usage.
"""

import argparse
import sys

from ugatit_paddle import cli
from ugatit_paddle.app import GRADIO_REQUIREMENT, HOST, PORT, NoModelError, launch, make_page
from ugatit_paddle.formats.checkpoint import CheckpointError
from ugatit_paddle.inference.export import ExportError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--checkpoint", metavar="PATH", help="project checkpoint or generator file (default: see above)")
    model.add_argument("--inference-model", metavar="DIR", help="folder written by tools/export_model.py")
    model.add_argument("--onnx", metavar="MODEL", help="ONNX model of tools/export_model.py --format onnx")
    parser.add_argument("--host", default=HOST, help="address to listen on (default %(default)s: this machine only)")
    parser.add_argument("--port", type=int, default=PORT, help="port (default %(default)s)")
    a = parser.parse_args(argv)

    def work() -> int:
        try:
            page, name = make_page(a.checkpoint, a.inference_model, a.onnx)  # the model first, then Gradio
        except ModuleNotFoundError as e:
            if e.name != "gradio":
                raise
            return cli.report_error(f'the page needs Gradio: pip install "{GRADIO_REQUIREMENT}"')
        print(f"model: {name}")
        print(f"open http://{a.host}:{a.port} (Ctrl-C stops)", flush=True)
        launch(page, a.host, a.port)
        return cli.EXIT_OK

    return cli.run(work, failures=(NoModelError, CheckpointError, ExportError, OSError))


if __name__ == "__main__":
    sys.exit(main())
