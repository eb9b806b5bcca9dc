"""The ``napari-livecell train`` and ``export`` subcommands (see cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from napari_livecell._commands import CommandError


def cmd_export(args: argparse.Namespace) -> int:
    from napari_livecell.core.export import export_onnx, export_triton

    weights = None if args.weights == "default" else args.weights
    size = (args.imgsz[0], args.imgsz[-1])
    out = Path(args.out)
    onnx_path = export_onnx(weights, out if out.suffix == ".onnx" else out / "model.onnx", imgsz=size)
    print(f"wrote {onnx_path}")
    if args.triton:
        print(f"wrote Triton model repository {export_triton(onnx_path, args.triton)}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from napari_livecell.core.model import DEFAULT_MODEL
    from napari_livecell.core.train import PRESETS, TrainSettings, saved_run, train_model

    out = Path(args.out)
    if args.resume:
        settings, metadata = saved_run(out)
        settings.device, settings.workers = args.device, args.workers
    else:
        preset = PRESETS[args.preset]
        base = args.model or preset["model"]
        base = str(DEFAULT_MODEL) if base == "default" else base
        crop = preset["crop"] if args.crop is None else (args.crop or None)
        data_yaml, metadata = _training_data(args, out, crop)
        metadata["preset"] = args.preset
        settings = TrainSettings.for_base(
            str(data_yaml),
            base,
            epochs=args.epochs,
            imgsz=args.imgsz or preset["imgsz"],
            batch=args.batch or preset["batch"],
            device=args.device,
            seed=args.seed,
            workers=args.workers,
        )

    printed_epochs: set[int] = set()

    def report(progress) -> None:
        if not progress.epoch_done:
            return
        mask_map = progress.metrics.get("metrics/mAP50-95(M)", float("nan"))
        box_map = progress.metrics.get("metrics/mAP50-95(B)", float("nan"))
        scores = f"mask mAP50-95 {mask_map:.3f}, box mAP50-95 {box_map:.3f}"
        if progress.epoch in printed_epochs:  # Ultralytics validates best.pt once more at the end
            print(f"best.pt: {scores}", flush=True)
            return
        printed_epochs.add(progress.epoch)
        loss = float("nan") if progress.loss is None else progress.loss
        print(f"epoch {progress.epoch}/{progress.epochs}: loss {loss:.3f}, {scores}", flush=True)

    result = train_model(settings, out, metadata=metadata, on_progress=report, resume=args.resume)
    summary = {"weights": str(result.weights), "seconds": round(result.seconds)}
    if args.export == "onnx":
        from napari_livecell.core.export import export_onnx

        summary["onnx"] = str(export_onnx(result.weights, out / "best.onnx"))
    print(json.dumps(summary))
    return 0


def _training_data(args: argparse.Namespace, out: Path, crop: int | None) -> tuple[Path, dict]:
    """The data.yaml to train on (converting a COCO json first) and its provenance."""
    from napari_livecell.core.training_data import coco_to_yolo_dataset

    if args.data is None:
        raise CommandError("--data is required (or --resume to continue a run)")
    data = Path(args.data)
    if not data.exists():
        raise CommandError(f"training data not found: {data}")
    metadata: dict = {"command": " ".join(["napari-livecell", *sys.argv[1:]])}
    if data.suffix.lower() == ".json":
        if args.images is None:
            raise CommandError("--images DIR is required with a COCO json")
        data_yaml = coco_to_yolo_dataset(data, args.images, out / "dataset", crop=crop, seed=args.seed)
        metadata["data"] = {"coco": data.name, "crop": crop}
        provenance = data.parent / "synth.json"
        if provenance.exists():
            metadata["data"]["synth"] = json.loads(provenance.read_text())
        return data_yaml, metadata
    if data.is_dir() and (data / "data.yaml").exists():
        return data / "data.yaml", metadata
    if data.suffix.lower() in (".yaml", ".yml"):
        return data, metadata
    raise CommandError(f"{data} is neither a COCO json nor a YOLO dataset (folder with data.yaml)")
