"""Training data: annotated frames -> a YOLO-seg dataset Ultralytics trains on, checked first.

COCO annotations (LIVECell's, ours, or corrections exported from napari) and
corrected napari layers become a YOLO dataset, optionally cut into
native-resolution crops: cells keep their pixel size, so a model trained on
320-px crops segments full 704 x 520 frames at image size 704, while training
costs ~4x less per image.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .coco import annotations_by_image, annotations_to_labels, load_coco
from .yolo import YoloSample, validation_picks, write_data_yaml, write_yolo_sample

MIN_FRAGMENT_AREA = 8  # px; cell pieces left at a crop border smaller than this are dropped


def tile_starts(length: int, tile: int) -> list[int]:
    """Evenly spaced starts of ``tile``-long windows that cover ``length``."""
    if tile >= length:
        return [0]
    count = math.ceil(length / tile)
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def _crops(
    image: np.ndarray, labels: np.ndarray, crop: int | None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    if crop is None:
        return [("", image, labels)]
    pieces = []
    for row in tile_starts(labels.shape[0], crop):
        for col in tile_starts(labels.shape[1], crop):
            window = np.s_[row : row + crop, col : col + crop]
            piece = labels[window].copy()
            areas = np.bincount(piece.ravel())
            small = np.flatnonzero(areas < MIN_FRAGMENT_AREA)
            piece[np.isin(piece, small[small > 0])] = 0
            pieces.append((f"_r{row}_c{col}", image[window], piece))
    return pieces


class DatasetError(ValueError):
    """Training data that cannot train a model; the message names the problem."""


@dataclass
class TrainingFrame:
    """One annotated frame to train on.

    Attributes
    ----------
    name : str
        File stem in the dataset (crops get ``_r<row>_c<col>`` appended).
    image : numpy.ndarray
        ``(H, W)`` or ``(H, W, 3)`` image, any dtype (scaled to uint8 as for
        inference).
    labels : numpy.ndarray
        ``(H, W)`` label image, 0 = background.
    classes : sequence of int, optional
        Class id of each label ``1..N`` (all 0 when omitted).
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    classes: Sequence[int] | None = None


def write_training_dataset(
    frames: Iterable[TrainingFrame],
    n_frames: int,
    names: dict[int, str],
    out: str | os.PathLike,
    crop: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> Path:
    """Write annotated frames as a YOLO-seg dataset with a train/val split by frame.

    Parameters
    ----------
    frames : iterable of TrainingFrame
        Read lazily, one at a time, so large datasets need not fit in memory.
    n_frames : int
        How many frames ``frames`` yields (for the split).
    names : dict
        Class id -> name.
    out : path
        Dataset folder; gets ``images/``, ``labels/`` and ``data.yaml``.
    crop : int, optional
        Cut every frame into ``crop`` x ``crop`` tiles at native resolution.
    val_fraction : float
        Share of *frames* (not tiles) held out for validation; a single frame
        trains and validates on itself.
    seed : int
        Seed of the train/val split.

    Returns
    -------
    Path
        ``data.yaml``.
    """
    from .predict import to_uint8

    if n_frames < 1:
        raise DatasetError("empty dataset: no annotated frames to train on")
    out = Path(out)
    val_ids = validation_picks(n_frames, val_fraction, seed)
    n_classes = len(names)
    any_cells = False
    for position, frame in enumerate(frames):
        if frame.classes is not None and len(frame.classes) and max(frame.classes) >= n_classes:
            raise DatasetError(
                f"{frame.name}: class id {max(frame.classes)} is not among the {n_classes} "
                f"class name(s) ({', '.join(names.values())})"
            )
        any_cells = any_cells or bool(np.any(frame.labels))
        split = "val" if position in val_ids else "train"
        image = to_uint8(np.asarray(frame.image))
        for suffix, image_piece, label_piece in _crops(image, np.asarray(frame.labels), crop):
            sample = YoloSample(frame.name + suffix, image_piece, label_piece, frame.classes)
            write_yolo_sample(out, split, sample)
    if not any_cells:
        raise DatasetError("empty dataset: the frames hold no annotated cells")
    return write_data_yaml(out, names, ["train", "val"] if val_ids else ["train"])


def coco_to_yolo_dataset(
    coco_json: str | os.PathLike,
    images_dir: str | os.PathLike,
    out: str | os.PathLike,
    crop: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> Path:
    """Convert a COCO json and its images into a YOLO-seg dataset.

    Parameters
    ----------
    coco_json : path
        COCO instance annotations (list- or dict-style ``annotations``).
    images_dir : path
        Folder holding the images named in the json.
    out : path
        Dataset folder; gets ``images/``, ``labels/`` and ``data.yaml``.
    crop : int, optional
        Cut every image into ``crop`` x ``crop`` tiles at native resolution.
    val_fraction : float
        Share of *images* (not tiles) held out for validation.
    seed : int
        Seed of the train/val split.

    Returns
    -------
    Path
        ``data.yaml``.

    Raises
    ------
    DatasetError
        No images, no annotations, or an annotation whose category is not
        among the json's ``categories``.
    FileNotFoundError
        An image named in the json is not in ``images_dir``.
    """
    from .images import read_image

    coco = load_coco(coco_json)
    images_dir = Path(images_dir)
    if not coco["images"]:
        raise DatasetError(f"empty dataset: {Path(coco_json).name} lists no images")
    by_image = annotations_by_image(coco)
    category_ids = sorted(int(c["id"]) for c in coco["categories"])
    # YOLO class ids are 0..n-1 whatever ids the json uses
    class_of = {category: index for index, category in enumerate(category_ids)}
    names = {class_of[int(c["id"])]: str(c["name"]) for c in coco["categories"]}
    for entry in coco["images"]:
        if not (images_dir / entry["file_name"]).exists():
            raise FileNotFoundError(f"image {entry['file_name']} not found in {images_dir}")

    def frames() -> Iterator[TrainingFrame]:
        for entry in coco["images"]:
            annotations = by_image.get(entry["id"], [])
            unknown = [a for a in annotations if int(a["category_id"]) not in class_of]
            if unknown:
                raise DatasetError(
                    f"{entry['file_name']}: annotation {unknown[0].get('id')} has category_id "
                    f"{unknown[0]['category_id']}, not among the categories {category_ids}"
                )
            yield TrainingFrame(
                name=Path(entry["file_name"]).stem,
                image=read_image(images_dir / entry["file_name"]),
                labels=annotations_to_labels(annotations, entry["height"], entry["width"]),
                classes=[class_of[int(a["category_id"])] for a in annotations],
            )

    return write_training_dataset(frames(), len(coco["images"]), names, out, crop, val_fraction, seed)


def resolve_training_data(
    data: str | os.PathLike,
    out: str | os.PathLike,
    images: str | os.PathLike | None = None,
    crop: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> tuple[Path, dict]:
    """The ``data.yaml`` to train on, converting a COCO json (and its images) first.

    Parameters
    ----------
    data : path
        A YOLO dataset folder (with ``data.yaml``), a ``data.yaml``, a COCO
        json, or an export folder holding one COCO json beside its images.
    out : path
        Folder for the converted dataset (COCO input only).
    images : path, optional
        The COCO json's image folder; by default ``images/`` beside the json
        when it exists, else the json's own folder.
    crop, val_fraction, seed
        As for :func:`coco_to_yolo_dataset`.

    Returns
    -------
    data_yaml : Path
    provenance : dict
        ``{"data": {"coco": name, "crop": crop, ...}}`` for a converted json
        (with the synthetic recipe when a ``synth.json`` lies beside it), else ``{}``.

    Raises
    ------
    DatasetError
        ``data`` is none of the above.
    FileNotFoundError
        ``data`` does not exist.
    """
    import json

    data = Path(data)
    if not data.exists():
        raise FileNotFoundError(f"training data not found: {data}")
    if data.is_dir() and (data / "data.yaml").is_file():
        return data / "data.yaml", {}
    if data.is_file() and data.suffix.lower() in (".yaml", ".yml"):
        return data, {}
    if data.is_dir():
        jsons = sorted(data.glob("*.json"))
        if len(jsons) != 1:
            raise DatasetError(
                f"{data} is not an export folder: expected a YOLO dataset (data.yaml) "
                "or one COCO json beside its images"
            )
        data = jsons[0]
    if data.suffix.lower() != ".json":
        raise DatasetError(f"{data} is neither a COCO json nor a YOLO dataset (folder with data.yaml)")
    if images is None:
        images = data.parent / "images" if (data.parent / "images").is_dir() else data.parent
    data_yaml = coco_to_yolo_dataset(data, images, out, crop=crop, val_fraction=val_fraction, seed=seed)
    provenance: dict = {"data": {"coco": data.name, "crop": crop}}
    recipe = data.parent / "synth.json"
    if recipe.is_file():
        provenance["data"]["synth"] = json.loads(recipe.read_text())
    return data_yaml, provenance


def check_yolo_dataset(data_yaml: str | os.PathLike) -> dict[str, int]:
    """Check a YOLO-seg dataset before training; return image counts per split.

    Ultralytics skips images whose labels it cannot read, with a warning in
    a log: a dataset that lost half its labels would train silently on the
    rest. Here every label file is parsed and the first problem is raised.

    Raises
    ------
    DatasetError
        Missing image folders, no training images, malformed label lines,
        class ids beyond the dataset's names, or no labelled cells at all.
    """
    from .images import IMAGE_SUFFIXES
    from .yolo import YoloFormatError, parse_yolo_lines, read_data_yaml

    data_yaml = Path(data_yaml)
    if not data_yaml.is_file():
        raise DatasetError(f"dataset description not found: {data_yaml}")
    try:
        data = read_data_yaml(data_yaml)
    except YoloFormatError as error:
        raise DatasetError(str(error)) from None
    root = Path(data.get("path") or data_yaml.parent)
    if not root.is_absolute():
        root = data_yaml.parent / root
    n_classes = len(data["names"])
    counts: dict[str, int] = {}
    n_cells = 0
    for split in ("train", "val"):
        entry = data.get(split)
        if not isinstance(entry, str):
            continue  # lists and txt files of images are Ultralytics' to check
        folder = root / entry
        if not folder.is_dir():
            raise DatasetError(f"missing images: the {split} folder {folder} does not exist")
        images = [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
        counts[split] = len(images)
        for image in images:
            # Ultralytics' rule: the last /images/ in the path becomes /labels/
            head, sep, tail = str(image).rpartition(f"{os.sep}images{os.sep}")
            label = Path(f"{head}{os.sep}labels{os.sep}{tail}" if sep else image).with_suffix(".txt")
            if label.is_file():
                try:
                    cells = parse_yolo_lines(label.read_text(), str(label.relative_to(root)), n_classes)
                except YoloFormatError as error:
                    raise DatasetError(str(error)) from None
                n_cells += len(cells) if split == "train" else 0
    if not counts.get("train"):
        raise DatasetError(f"empty dataset: no training images under {root}")
    if n_cells == 0:
        raise DatasetError(f"empty dataset: no labelled cells in the training images under {root}")
    return counts
