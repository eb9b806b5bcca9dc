"""Our pipeline + pycocotools vs Ultralytics' own ``val`` on the same images and settings.

Run: ``python benchmarks/agreement_ultralytics.py GT.json IMAGES_DIR [--conf 0.001]``
(for example on ``napari-livecell synth --out heldout --n 30 --seed 999``).
"""

from __future__ import annotations

import argparse
import json
import tempfile

from napari_livecell.core.analysis.evaluate import evaluate, predict_dataset
from napari_livecell.core.inference.predict import PredictSettings
from napari_livecell.core.models.model import DEFAULT_MODEL, load_model
from napari_livecell.core.models.offline import import_ultralytics
from napari_livecell.core.training.data import coco_to_yolo_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("gt")
    parser.add_argument("images")
    parser.add_argument("--conf", type=float, default=0.001)
    parser.add_argument("--iou", type=float, default=0.6)
    parser.add_argument("--imgsz", type=int, default=704)
    args = parser.parse_args()
    settings = PredictSettings(conf=args.conf, iou=args.iou, imgsz=args.imgsz)
    ours = evaluate(args.gt, predict_dataset(args.gt, args.images, load_model(device="cpu"), settings))
    import_ultralytics()
    from ultralytics import YOLO

    with tempfile.TemporaryDirectory() as folder:
        data = coco_to_yolo_dataset(args.gt, args.images, folder, val_fraction=0.0)
        metrics = YOLO(str(DEFAULT_MODEL)).val(
            data=str(data),
            split="train",
            imgsz=args.imgsz,
            conf=args.conf,
            iou=args.iou,
            max_det=3000,
            plots=False,
            batch=4,
            workers=0,
            verbose=False,
            project=folder,
        )
    print(
        json.dumps(
            {
                "settings": vars(settings),
                "ours_pycocotools": {
                    "mask": ours["segm"]["AP"],
                    "mask50": ours["segm"]["AP50"],
                    "box": ours["bbox"]["AP"],
                    "box50": ours["bbox"]["AP50"],
                },
                "ultralytics_val": {
                    "mask": metrics.seg.map,
                    "mask50": metrics.seg.map50,
                    "box": metrics.box.map,
                    "box50": metrics.box.map50,
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
