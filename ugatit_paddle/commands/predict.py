"""Translate image files with a checkpoint or an exported inference model.

    python tools/predict.py --checkpoint model.pdparams --input photos/ --output out/
    python tools/predict.py --checkpoint model.pdparams --input a.jpg "more/**/*.png" --output out/ --keep-size \
        --heatmap
    python tools/predict.py --checkpoint model.pdparams --direction B2A --input anime/ --output out/
    python tools/predict.py --inference-model exported/ --input photos/ --output out/     # Paddle Inference
    python tools/predict.py --onnx exported/A2B.onnx --input photos/ --output out/        # ONNX Runtime
    python tools/predict.py --checkpoint generators.pdparams --input photos/ --output out/  # generator file
    python tools/predict.py --checkpoint selfie2anime.pdparams --input me.jpg --output out/ --face --face-sheet

Inputs are files, folders (searched recursively) and globs (quote them). Each output keeps its input's
name and sub-folder with the extension of --format (photos/x/a.jpg -> out/x/a.png); --heatmap also writes
the CAM heatmap as a_heatmap.png. Images are resized to the model's size; --keep-size resizes the result
back to the input's size. Photos are turned upright by their EXIF orientation. Unreadable files are reported
and skipped.

--face (what selfie2anime needs: it was trained on square face crops): each face of a photo, found with
OpenCV's Haar cascades, turned level and cut square with hair and chin, is translated to a_face1.png,
a_face2.png, ... (largest first; --max-faces N), and out/faces.json records where each face was (box, angle,
crop corners, output file). A photo without a face is warned about and translated as its centre square
(--face-strict: skipped). B2A uses the centre square (the cascades do not find anime faces). --face-sheet also
writes a_face_sheet.png: the photo with the faces boxed, each crop beside its translation.
Exit status: 0 done (also when some inputs were skipped), 1 errors (nothing readable, bad checkpoint, ...).
"""

import argparse
import sys
from pathlib import Path

from ugatit_paddle import cli
from ugatit_paddle.formats.checkpoint import CheckpointError
from ugatit_paddle.inference.export import ExportError
from ugatit_paddle.inference.translate import (
    BATCH_SIZE, DIRECTIONS, FaceOptions, InputError, Translator, collect_inputs, translate_files,
)

FORMATS = ("png", "jpg", "webp", "bmp")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", metavar="PATH",
                       help="project checkpoint (training, tools/convert_torch.py, or export_model.py --weights-only)")
    model.add_argument("--inference-model", metavar="DIR", help="folder written by tools/export_model.py")
    model.add_argument("--onnx", metavar="MODEL",
                       help="ONNX model (.onnx file or its folder) of tools/export_model.py --format onnx; needs "
                            "onnxruntime")
    parser.add_argument("--input", nargs="+", required=True, metavar="PATH", help="image files, folders or globs")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the translations")
    parser.add_argument("--direction", choices=tuple(DIRECTIONS),
                        help="A2B or B2A (default A2B; an exported model has the direction it was exported with)")
    parser.add_argument("--keep-size", action="store_true", help="resize each result back to its input's size")
    parser.add_argument("--heatmap", action="store_true", help="also write <name>_heatmap.<format> (CAM heatmap)")
    parser.add_argument("--face", action="store_true",
                        help="translate each face (found, levelled, cut square) instead of the whole photo; writes "
                             "<name>_face<K>.<format> and faces.json")
    parser.add_argument("--max-faces", type=int, metavar="N", help="--face: the N largest faces per photo (default all)")
    parser.add_argument("--face-strict", action="store_true",
                        help="--face: skip photos without a face (default: translate their centre square)")
    parser.add_argument("--face-sheet", action="store_true",
                        help="--face: also write <name>_face_sheet.<format>: photo with boxes, crops and translations")
    parser.add_argument("--format", choices=FORMATS, default="png", help="output file format (default png)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="images per forward pass (default %(default)s)")
    parser.add_argument("--mkldnn", action="store_true", help="inference model: run with oneDNN (the fastest on CPU)")
    parser.add_argument("--threads", type=int,
                        help="inference model: CPU math library threads (Paddle's default: 1); ONNX: intra-op threads")
    a = parser.parse_args(argv)
    if a.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    if a.threads is not None and a.threads < 1:
        parser.error("--threads must be >= 1")
    if a.checkpoint and (a.mkldnn or a.threads is not None):
        parser.error("--mkldnn and --threads apply to --inference-model and --onnx only")
    if a.onnx and a.mkldnn:
        parser.error("--mkldnn applies to --inference-model only")
    if a.max_faces is not None and a.max_faces < 1:
        parser.error("--max-faces must be >= 1")
    if not a.face and (a.max_faces is not None or a.face_strict or a.face_sheet):
        parser.error("--max-faces, --face-strict and --face-sheet apply with --face only")

    def report(path: Path, reason: str) -> None:
        print(f"warning: skipping unreadable image {path}: {reason}", file=sys.stderr)

    def warn(path: Path, message: str) -> None:
        print(f"warning: {path}: {message}", file=sys.stderr)

    def work() -> int:
        inputs = collect_inputs(a.input)
        if a.checkpoint:
            translator = Translator.from_checkpoint(a.checkpoint, a.direction or "A2B", a.batch_size)
        else:
            if a.onnx:
                translator = Translator.from_onnx(a.onnx, a.threads, a.batch_size)
            else:
                translator = Translator.from_inference_model(a.inference_model, a.mkldnn, a.threads, a.batch_size)
            if a.direction and a.direction != translator.direction:
                raise ExportError(f"{a.onnx or a.inference_model} translates {translator.direction}, not {a.direction}; "
                                  f"export the other generator with tools/export_model.py --direction {a.direction}")
        faces = FaceOptions(a.max_faces, a.face_strict, a.face_sheet) if a.face else None
        result = translate_files(translator, inputs, a.output, keep_size=a.keep_size, heatmap=a.heatmap,
                                 image_format=a.format, on_skip=report, faces=faces, on_warning=warn)
        print(f"{result.summary()} ({translator.direction}) -> {a.output}")
        if result.written:
            return cli.EXIT_OK
        if result.no_face:
            return cli.report_error("no faces found in the readable inputs (--face-strict)")
        return cli.report_error("no readable images among the inputs")

    return cli.run(work, failures=(InputError, CheckpointError, ExportError, OSError))


if __name__ == "__main__":
    sys.exit(main())
