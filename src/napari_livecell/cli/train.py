"""``napari-livecell train`` and ``export``: a model from data, and a model for other runtimes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from napari_livecell.cli.common import (
    CommandError,
    ensure_output_file,
    ensure_output_folder,
    file_name_argument,
    imgsz_int,
    int_in,
    weights_argument,
)
from napari_livecell.core.models.export import DEFAULT_EXPORT_SIZE, TRITON_BACKENDS
from napari_livecell.core.training.pipeline import SCRATCH_EPOCHS


def add_parser(commands) -> None:
    """Register ``train`` and ``export``."""
    train = commands.add_parser(
        "train",
        help="train or fine-tune a YOLO-seg model, offline",
        description="Presets set model, imgsz, batch and crop; explicit options override them. "
        "nano (default): YOLOv8n-seg at 320 on native-resolution 320 px crops, fits a laptop CPU. "
        "livecell-x: the original LIVECell recipe, YOLOv8x-seg on square 704 inputs (a GPU job).",
    )
    train.add_argument("--data", default=None, help="COCO json (with --images) or YOLO dataset folder")
    train.add_argument("--images", default=None, help="image folder for a COCO json")
    train.add_argument(
        "--preset",
        choices=["nano", "livecell-x"],
        default="nano",
        help="nano: a laptop CPU's recipe (320 px); livecell-x: the original work's (704 px, a GPU)",
    )
    train.add_argument(
        "--model",
        default=None,
        help="base: an architecture yaml (from scratch), a .pt (fine-tune), or 'default' (shipped model)",
    )
    train.add_argument(
        "--epochs",
        type=int_in(1, 10_000),
        default=None,
        help="epochs (default: a fine-tune plans them to reach --steps optimizer steps; "
        f"{SCRATCH_EPOCHS} from scratch)",
    )
    train.add_argument(
        "--steps",
        type=int_in(1, 10_000_000),
        default=None,
        help="optimizer steps a fine-tune plans for (default MIN_FINETUNE_STEPS, 300)",
    )
    train.add_argument("--imgsz", type=imgsz_int, default=None, help="input size, px (default: the preset's)")
    train.add_argument(
        "--batch", type=int_in(1, 4096), default=None, help="images per step (default: the preset's)"
    )
    train.add_argument(
        "--crop",
        type=int_in(0, 100_000),
        default=None,
        help="cut images into native-resolution crops of this size (0: whole images)",
    )
    train.add_argument("--device", default="cpu", help="cpu (default), cuda:N or mps")
    train.add_argument("--workers", type=int_in(0, 1024), default=2, help="data-loading processes (2)")
    train.add_argument("--seed", type=int, default=0, help="random seed of the run (0)")
    train.add_argument("--out", required=True, help="output folder (best.pt, metrics.json, settings.json)")
    train.add_argument(
        "--resume", action="store_true", help="continue the interrupted run in --out where it stopped"
    )
    train.add_argument("--export", choices=["onnx"], default=None, help="also export best.pt")
    train.set_defaults(handler=cmd_train)

    exp = commands.add_parser("export", help="export a .pt model to ONNX (and a Triton repository)")
    exp.add_argument("weights", help="a .pt file, or 'default'")
    exp.add_argument("--format", choices=("onnx",), default="onnx", help="export format (onnx)")
    exp.add_argument(
        "--imgsz",
        type=imgsz_int,
        nargs="+",
        default=list(DEFAULT_EXPORT_SIZE),
        help="H W of the input ({} {})".format(*DEFAULT_EXPORT_SIZE),
    )
    exp.add_argument("--out", default=None, help="an .onnx path or a folder")
    exp.add_argument(
        "--triton",
        default=None,
        metavar="REPO",
        help="write a Triton model repository here (a dynamic export: Triton batches requests)",
    )
    exp.add_argument(
        "--triton-model",
        type=file_name_argument("--triton-model"),
        default="livecell",
        help="the model's name on the server (livecell)",
    )
    exp.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the model of that name in the --triton repository (refused without it)",
    )
    exp.add_argument(
        "--triton-backend",
        choices=TRITON_BACKENDS,
        default="python",
        help="python: ONNX Runtime in Triton's Python backend (the CPU server of nvidia-pytriton); "
        "onnxruntime: Triton's ONNX Runtime backend on a GPU (NVIDIA's containers); docs/triton.md",
    )
    exp.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    """Export weights to ONNX and/or a Triton model repository."""
    from napari_livecell.core.models.export import export_onnx, export_triton_repository

    if not args.out and not args.triton:
        raise CommandError("say where to export: --out model.onnx, --triton REPO, or both")
    weights = weights_argument(args.weights)
    if len(args.imgsz) > 2:
        raise CommandError(f"--imgsz takes one size or H W, not {len(args.imgsz)} numbers")
    size = (args.imgsz[0], args.imgsz[-1])
    target = None
    if args.out:
        out = Path(args.out)
        # an --out ending in .onnx is the file; anything else is a folder for model.onnx
        if out.suffix == ".onnx":
            target = ensure_output_file(out, option="--out")
        else:
            target = ensure_output_folder(out) / "model.onnx"
    if args.triton:
        existing = Path(args.triton) / args.triton_model
        if existing.exists() and not args.overwrite:
            raise CommandError(
                f"{existing} exists: the repository already holds a model {args.triton_model!r} "
                "(give --overwrite to replace it, or another --triton-model)"
            )
        ensure_output_folder(args.triton, option="--triton")
    if target is not None:
        print(f"wrote {export_onnx(weights, target, imgsz=size)}")
    if args.triton:
        folder = export_triton_repository(
            weights, args.triton, args.triton_model, args.triton_backend, overwrite=args.overwrite
        )
        print(f"wrote Triton model repository {folder}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or resume) and print a json summary."""
    from napari_livecell.core.models.model import DEFAULT_MODEL
    from napari_livecell.core.training.pipeline import TrainingOptions, run_training
    from napari_livecell.core.training.train import (
        PRESETS,
        base_modality,
        describe_before_after,
        saved_run,
        train_model,
    )

    out = Path(args.out)
    if args.resume:
        settings, metadata = saved_run(out)
        settings.device, settings.workers = args.device, args.workers
        ensure_output_folder(out)
    else:
        ensure_output_folder(out)  # before the dataset is built and training starts
        preset = PRESETS[args.preset]
        base = args.model or preset["model"]
        base = str(DEFAULT_MODEL) if base == "default" else base
        crop = preset["crop"] if args.crop is None else (args.crop or None)
        data_yaml, metadata = _training_data(args, out, crop, base_modality(base))
        metadata["preset"] = args.preset
        options = TrainingOptions(
            epochs=args.epochs,
            steps=args.steps,
            imgsz=args.imgsz or preset["imgsz"],
            batch=args.batch,
            default_batch=preset["batch"],
            device=args.device,
            workers=args.workers,
            seed=args.seed,
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

    plans: list = []

    def say_plan(plan) -> None:
        plans.append(plan)
        print(f"plan: {plan.reason}", file=sys.stderr, flush=True)
        for warning in plan.warnings:
            print(f"warning: {warning}", file=sys.stderr, flush=True)

    if args.resume:
        result = train_model(settings, out, metadata=metadata, on_progress=report, resume=True)
    else:
        result = run_training(
            data_yaml, base, out, options, metadata=metadata, on_plan=say_plan, on_progress=report
        )
    summary: dict = {"weights": str(result.weights), "seconds": round(result.seconds)}
    plan = plans[0].summary() if plans else metadata.get("plan")
    if plan:
        summary["plan"] = {key: plan[key] for key in ("epochs", "steps", "batch", "imgsz", "rotate")}
        summary["warnings"] = plan["warnings"]
    if result.before_after is not None:
        summary["before_after"] = result.before_after
        print(describe_before_after(result.before_after), file=sys.stderr, flush=True)
    if args.export == "onnx":
        from napari_livecell.core.models.export import export_onnx

        summary["onnx"] = str(export_onnx(result.weights, out / "best.onnx"))
    print(json.dumps(summary))
    return 0


def _training_data(
    args: argparse.Namespace, out: Path, crop: int | None, model_modality: str | None
) -> tuple[Path, dict]:
    """The data.yaml to train on (converting a COCO json first, in the base model's polarity)."""
    from napari_livecell.core.training.data import resolve_training_data

    if args.data is None:
        raise CommandError("--data is required (or --resume to continue a run)")
    if Path(args.data).suffix.lower() == ".json" and args.images is None:
        raise CommandError("--images DIR is required with a COCO json")
    data_yaml, provenance = resolve_training_data(
        args.data, out / "dataset", args.images, crop, seed=args.seed, model_modality=model_modality
    )
    return data_yaml, {"command": " ".join(["napari-livecell", *sys.argv[1:]]), **provenance}
