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
from ugatit_paddle.app import HOST, PORT, NoModelError, PhotoTranslator, build_page, default_model, launch
from ugatit_paddle.formats.checkpoint import CheckpointError
from ugatit_paddle.inference.export import ExportError
from ugatit_paddle.inference.translate import Translator
from ugatit_paddle.models import DIRECTIONS


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
            import gradio  # noqa: F401
        except ImportError:
            return cli.report_error('the page needs Gradio: pip install "gradio==6.31.0"')
        if a.inference_model or a.onnx:
            single = (Translator.from_onnx(a.onnx) if a.onnx else Translator.from_inference_model(a.inference_model))
            name, translate = a.onnx or a.inference_model, PhotoTranslator(lambda d: single, (single.direction,))
        else:
            path = a.checkpoint or default_model()
            Translator.from_checkpoint(path)  # fails here, not in the page, when the file is unusable
            name, translate = str(path), PhotoTranslator(lambda d: Translator.from_checkpoint(path, d), tuple(DIRECTIONS))
        print(f"model: {name}")
        print(f"open http://{a.host}:{a.port} (Ctrl-C stops)", flush=True)
        launch(build_page(translate, name), a.host, a.port)
        return cli.EXIT_OK

    return cli.run(work, failures=(NoModelError, CheckpointError, ExportError, OSError))


if __name__ == "__main__":
    sys.exit(main())
