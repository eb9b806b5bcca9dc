"""``napari-livecell quantize``: an int8 OpenVINO model calibrated on your own frames."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

import numpy as np

from napari_livecell.cli.common import int_in
from napari_livecell.core.inference.quantize import MAX_CALIBRATION_FRAMES


def add_parser(commands) -> None:
    """Register the subcommand."""
    quantize = commands.add_parser(
        "quantize",
        help="calibrate an int8 OpenVINO model on your frames (runtime openvino-int8)",
        description=(
            "Quantise the model's forward pass to int8 with NNCF, calibrated on a few of your own "
            "images (the frames of stacks count one by one), and keep it in the runtime cache: "
            "segment/serve --runtime openvino-int8 and the widget's runtime openvino-int8 then use "
            "it. About 2x the float32 OpenVINO forward pass here, mask mAP within 1 point "
            "(docs/runtime.md). Calibrating again replaces the earlier calibration."
        ),
    )
    quantize.add_argument("images", nargs="+", metavar="IMAGE", help="images, folders or globs")
    quantize.add_argument("--model", default=None, help=".pt or .onnx YOLO-seg weights (default: shipped)")
    quantize.add_argument(
        "--frames",
        type=int_in(1, 10_000),
        default=MAX_CALIBRATION_FRAMES,
        help=f"frames to calibrate on (default {MAX_CALIBRATION_FRAMES}; 20-30 cover a look)",
    )
    quantize.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Calibrate, then say where the int8 model is and how to use it."""
    from napari_livecell.core.images import find_images, read_image
    from napari_livecell.core.inference.predict import iter_frames
    from napari_livecell.core.inference.quantize import quantize_int8

    paths = find_images(args.images)
    used: list[str] = []

    def frames() -> Iterator[np.ndarray]:
        for path in paths:
            _, planes = iter_frames(read_image(path))
            for _, frame in planes:
                used.append(path.name)
                yield frame

    calibration = quantize_int8(args.model, frames(), args.frames, [p.name for p in paths])
    files = len(set(used[: calibration.n_frames]))  # the last frame read may not have been used
    print(
        f"int8 model calibrated on {calibration.n_frames} frame(s) of {files} file(s) in "
        f"{calibration.seconds:.0f} s: {calibration.folder}\n"
        "use it with --runtime openvino-int8 (segment, serve) or the widget's runtime openvino-int8",
        file=sys.stderr,
    )
    return 0
