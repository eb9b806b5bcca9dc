"""Runtime openvino-int8 against float32 OpenVINO and PyTorch: forward pass, end to end, mask mAP.

``python benchmarks/bench_int8.py [--rounds 7] [--heldout 30] [--calibration 20]`` (``--heldout 0``:
speed only)

The int8 model is calibrated on ``--calibration`` synthetic frames (seeds
100...: "the user's own frames", never the held-out ones), then:

* speed: forward pass alone and frame -> ``Segmentation`` for torch, OpenVINO
  float32 and OpenVINO int8, alternating in ``--rounds`` rounds in this
  process (medians), at ~50 and ~500 cells per 704 x 520 frame;
* accuracy: box and mask mAP (pycocotools, LIVECell protocol, conf 0.001) on
  the held-out synthetic set the README's default-model table uses
  (``synth --n 30 --seed 999``), float32 vs int8.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_livecell.core.inference.frame_input import to_bgr
from napari_livecell.core.inference.predict import PredictSettings, segment_frame
from napari_livecell.core.models.model import DEFAULT_MODEL, load_model
from napari_livecell.core.training.synthetic import synthesize_image


def forward_of(model, frame: np.ndarray):
    import torch

    segment_frame(frame, model)  # makes the predictor (and compiles OpenVINO for this shape)
    predictor = model.yolo.predictor
    tensor = predictor.preprocess([to_bgr(frame)])

    def forward() -> None:
        with torch.inference_mode():
            predictor.model(tensor)

    return forward


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def mask_map(model, folder: Path) -> tuple[float, float]:
    """Box and mask mAP50-95 of ``model`` on the COCO set in ``folder`` (conf 0.001, LIVECell protocol)."""
    from napari_livecell.core.analysis.evaluate import evaluate, predict_dataset

    truth = folder / "annotations.json"
    predictions = predict_dataset(truth, folder / "images", model, PredictSettings(conf=0.001))
    scores = evaluate(truth, predictions)
    return scores["bbox"]["AP"], scores["segm"]["AP"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--heldout", type=int, default=30)
    parser.add_argument("--calibration", type=int, default=20)
    args = parser.parse_args()

    from napari_livecell.core.inference.quantize import quantize_int8

    calibration_frames = (synthesize_image(seed=100 + i, n_cells=300).image for i in range(args.calibration))
    calibration = quantize_int8(DEFAULT_MODEL, calibration_frames, args.calibration)
    print(f"int8 calibrated on {calibration.n_frames} frames in {calibration.seconds:.0f} s")
    models = {
        "torch": load_model(device="cpu", runtime="torch"),
        "openvino f32": load_model(device="cpu", runtime="openvino"),
        "openvino int8": load_model(device="cpu", runtime="openvino-int8"),
    }
    print("| cells / frame | contender | forward | x torch | end to end | x torch |")
    print("|---|---|---|---|---|---|")
    for n_cells in (50, 500):
        frame = synthesize_image(seed=7, n_cells=n_cells).image
        forwards = {name: forward_of(model, frame) for name, model in models.items()}
        times: dict[str, dict[str, list[float]]] = {name: {"forward": [], "end": []} for name in models}
        for _ in range(args.rounds):
            for name, model in models.items():
                times[name]["forward"].append(timed(forwards[name]))
                times[name]["end"].append(timed(lambda m=model, f=frame: segment_frame(f, m).polygons))
        medians = {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}
        for name in models:
            forward, end = medians[name]["forward"], medians[name]["end"]
            print(
                f"| ~{n_cells} | {name} | {forward * 1000:.0f} ms | "
                f"{medians['torch']['forward'] / forward:.2f} | {end * 1000:.0f} ms | "
                f"{medians['torch']['end'] / end:.2f} |"
            )

    if args.heldout <= 0:
        return
    from napari_livecell.cli import main as cli

    with tempfile.TemporaryDirectory() as scratch:
        heldout = Path(scratch) / "heldout"
        cli(["synth", "--out", str(heldout), "--n", str(args.heldout), "--seed", "999"])
        print("| model | box mAP50-95 | mask mAP50-95 |")
        print("|---|---|---|")
        for name in ("openvino f32", "openvino int8"):
            box, mask = mask_map(models[name], heldout)
            print(f"| {name} | {box:.4f} | {mask:.4f} |")


if __name__ == "__main__":
    main()
