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

from napari_livecell.core.formats.coco import annotations_by_image, annotations_to_labels, load_coco
from napari_livecell.core.formats.yolo import (
    YoloFormatError,
    YoloSample,
    dataset_root,
    label_path,
    split_folder,
    split_images,
    validation_picks,
    write_data_yaml,
    write_yolo_sample,
)

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
    model_modality: str | None = None,
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
    model_modality : str, optional
        What the model to be fine-tuned sees (``"phase"`` or ``"fluorescence"``).
        Each frame is then shown to it as inference would: a frame ``auto``
        takes for the other modality is inverted, so that a phase model
        learns from fluorescence corrections in its own polarity (and is
        later given those frames inverted, as it was trained). ``None``
        (training from scratch): frames as they are.

    Returns
    -------
    Path
        ``data.yaml``.
    """
    from napari_livecell.core.inference.frame_input import frame_polarity, invert, to_uint8
    from napari_livecell.core.inference.predict import PredictSettings

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
        if model_modality and frame_polarity(image, PredictSettings(), model_modality).inverted:
            image = invert(image)
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
    model_modality: str | None = None,
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
    model_modality : str, optional
        As for :func:`write_training_dataset`.

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
    from napari_livecell.core.images import read_image

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

    return write_training_dataset(
        frames(), len(coco["images"]), names, out, crop, val_fraction, seed, model_modality
    )


def resolve_training_data(
    data: str | os.PathLike,
    out: str | os.PathLike,
    images: str | os.PathLike | None = None,
    crop: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    model_modality: str | None = None,
) -> tuple[Path, dict]:
    """The ``data.yaml`` to train on, converting a COCO json (and its images) first.

    Parameters
    ----------
    data : path
        A YOLO dataset folder (with ``data.yaml``), a ``data.yaml``, a COCO
        json, an export folder holding one COCO json beside its images, or a
        review dataset folder (``review.db``, see :mod:`napari_livecell.core.training.review`).
    out : path
        Folder for the converted dataset (COCO input only).
    images : path, optional
        The COCO json's image folder; by default ``images/`` beside the json
        when it exists, else the json's own folder.
    crop, val_fraction, seed, model_modality
        As for :func:`coco_to_yolo_dataset` (a YOLO dataset is used as it is).

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

    from .review import is_review_folder

    data = Path(data)
    if not data.exists():
        raise FileNotFoundError(f"training data not found: {data}")
    if data.is_dir() and (data / "data.yaml").is_file():
        return data / "data.yaml", {}
    if data.is_file() and data.suffix.lower() in (".yaml", ".yml"):
        return data, {}
    if data.is_dir() and is_review_folder(data):
        data, images = _review_coco(data, Path(out))
    elif data.is_dir():
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
    data_yaml = coco_to_yolo_dataset(data, images, out, crop, val_fraction, seed, model_modality)
    provenance: dict = {"data": {"coco": data.name, "crop": crop}}
    recipe = data.parent / "synth.json"
    if recipe.is_file():
        provenance["data"]["synth"] = json.loads(recipe.read_text())
    return data_yaml, provenance


@dataclass
class DatasetStats:
    """Images and labelled cells per split of a checked YOLO dataset.

    Attributes
    ----------
    train_images, train_cells : int
        Training images (crops count as images) and the cells on them.
    val_images, val_cells : int
        The same for the validation split.
    val_is_train : bool
        True when ``val`` names the training images themselves (a dataset
        of one frame): its scores say how well the model fits, not how well
        it generalises.
    max_side : int
        Longest side of any training image in pixels (0 when unknown).
    """

    train_images: int
    train_cells: int
    val_images: int = 0
    val_cells: int = 0
    val_is_train: bool = False
    max_side: int = 0


def describe_yolo_dataset(data_yaml: str | os.PathLike) -> DatasetStats:
    """Check a YOLO-seg dataset before training; count its images and cells per split.

    Ultralytics skips images whose labels it cannot read, with a warning in
    a log: a dataset that lost half its labels would train silently on the
    rest. Here every label file is parsed and the first problem is raised.

    Raises
    ------
    DatasetError
        Missing image folders, no training images, malformed label lines,
        class ids beyond the dataset's names, or no labelled cells at all.
    """
    from napari_livecell.core.formats.yolo import parse_yolo_lines, read_data_yaml

    data_yaml = Path(data_yaml)
    if not data_yaml.is_file():
        raise DatasetError(f"dataset description not found: {data_yaml}")
    try:
        data = read_data_yaml(data_yaml)
    except YoloFormatError as error:
        raise DatasetError(str(error)) from None
    root = dataset_root(data_yaml, data)
    n_classes = len(data["names"])
    images: dict[str, int] = {}
    cells: dict[str, int] = {"train": 0, "val": 0}
    max_side = 0
    for split in ("train", "val"):
        folder = split_folder(data, root, split)
        if folder is None:
            continue
        if not folder.is_dir():
            raise DatasetError(f"missing images: the {split} folder {folder} does not exist")
        found = split_images(folder)
        images[split] = len(found)
        for image in found:
            if split == "train":
                max_side = max(max_side, _longest_side(image))
            label = label_path(image)
            if label.is_file():
                try:
                    parsed = parse_yolo_lines(label.read_text(), str(label.relative_to(root)), n_classes)
                except YoloFormatError as error:
                    raise DatasetError(str(error)) from None
                cells[split] += len(parsed)
    if not images.get("train"):
        raise DatasetError(f"empty dataset: no training images under {root}")
    if cells["train"] == 0:
        raise DatasetError(f"empty dataset: no labelled cells in the training images under {root}")
    train_folder, val_folder = split_folder(data, root, "train"), split_folder(data, root, "val")
    return DatasetStats(
        train_images=images["train"],
        train_cells=cells["train"],
        val_images=images.get("val", 0),
        val_cells=cells["val"],
        val_is_train=(
            val_folder is not None
            and train_folder is not None
            and val_folder.resolve() == train_folder.resolve()
        ),
        max_side=max_side,
    )


def _longest_side(image: Path) -> int:
    """An image's longest side from its header (0 when unreadable: Ultralytics will say)."""
    from PIL import Image

    try:
        with Image.open(image) as opened:
            return max(opened.size)
    except (OSError, ValueError):
        return 0


def _review_coco(folder: Path, out: Path) -> tuple[Path, Path]:
    """A review dataset's corrected cells as one COCO json, and the folder of its images."""
    from napari_livecell.core.formats.coco import write_coco

    from .review import ReviewIndex, combined_coco

    index = ReviewIndex.load(folder)
    coco = combined_coco(index)
    if not coco["images"]:
        raise DatasetError(f"empty dataset: no image of the review in {folder} has cells yet")
    parents = {Path(e.image).parent for e in index.entries if index.cells_path(e.name).is_file()}
    if len(parents) != 1:
        raise DatasetError(f"the review's images lie in {len(parents)} folders; train needs them in one")
    json_path = write_coco(out.parent / f"{out.name}_review.json", coco)
    return json_path, parents.pop()


def check_yolo_dataset(data_yaml: str | os.PathLike) -> dict[str, int]:
    """Check a YOLO-seg dataset before training; return image counts per split.

    See :func:`describe_yolo_dataset`, which also counts cells.

    Raises
    ------
    DatasetError
        As :func:`describe_yolo_dataset`.
    """
    stats = describe_yolo_dataset(data_yaml)
    counts = {"train": stats.train_images}
    data = _read_yaml_or_raise(Path(data_yaml))
    if isinstance(data.get("val"), str):
        counts["val"] = stats.val_images
    return counts


def _read_yaml_or_raise(data_yaml: Path) -> dict:
    from napari_livecell.core.formats.yolo import read_data_yaml

    try:
        return read_data_yaml(data_yaml)
    except YoloFormatError as error:
        raise DatasetError(str(error)) from None


def split_frames(
    data_yaml: str | os.PathLike, split: str = "val", limit: int | None = None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The images of one split with their label images, as training sees them.

    Used to score a model before and after fine-tuning on the user's own
    held-out frames.

    Parameters
    ----------
    data_yaml : path
        A dataset :func:`describe_yolo_dataset` accepts.
    split : str
        ``"train"`` or ``"val"``.
    limit : int, optional
        At most this many frames (the first in name order): scoring stays cheap
        on a large validation split.

    Returns
    -------
    list of (name, image, labels)
        ``image`` as stored (uint8), ``labels`` ``(H, W)`` int32.
    """
    import imageio.v3 as iio

    from napari_livecell.core.formats.yolo import parse_yolo_lines, yolo_to_labels

    data_yaml = Path(data_yaml)
    data = _read_yaml_or_raise(data_yaml)
    folder = split_folder(data, dataset_root(data_yaml, data), split)
    if folder is None or not folder.is_dir():
        return []
    frames = []
    for image_path in split_images(folder)[:limit]:
        image = np.asarray(iio.imread(image_path))
        label = label_path(image_path)
        cells = parse_yolo_lines(label.read_text()) if label.is_file() else []
        labels, _ = yolo_to_labels(cells, *image.shape[:2])
        frames.append((image_path.stem, image, labels))
    return frames


# np.rot90 by k quarter turns (counter-clockwise) moves a normalised point (x, y) here
_ROTATED_POINT = {
    1: lambda x, y: (y, 1.0 - x),
    2: lambda x, y: (1.0 - x, 1.0 - y),
    3: lambda x, y: (1.0 - y, x),
}


def write_rotated_training_set(data_yaml: str | os.PathLike, out: str | os.PathLike) -> Path:
    """A copy of a dataset whose training split also holds 90, 180 and 270-degree turns.

    Microscopy has no up or down, but Ultralytics only rotates by arbitrary
    angles (black corners, resampled masks); quarter turns are exact. With
    its flips they give all eight orientations, and a handful of frames
    gives four times as many batches per epoch (less per-epoch overhead).
    The validation split is copied unturned (a dataset validating on its
    training frames gets those, unturned); the source is left untouched.

    Parameters
    ----------
    data_yaml : path
        A dataset :func:`describe_yolo_dataset` accepts, with folder splits.
    out : path
        New dataset folder.

    Returns
    -------
    Path
        ``out/data.yaml``.
    """
    import shutil

    from napari_livecell.core.formats.yolo import read_data_yaml, write_data_yaml

    data_yaml = Path(data_yaml)
    data = read_data_yaml(data_yaml)
    root = dataset_root(data_yaml, data)
    out = Path(out)
    for split in ("train", "val"):
        # a dataset that validates on its training frames validates on them unturned, as before
        folder = split_folder(data, root, split)
        if folder is None or not folder.is_dir():
            raise DatasetError(f"{data_yaml}: no {split} image folder to copy")
        for image_path in split_images(folder):
            relative = image_path.relative_to(folder)
            label = label_path(image_path)
            text = label.read_text() if label.is_file() else ""
            target = out / "images" / split / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image_path, target)
            _write_label(label_path(target), text)
            if split == "val":
                continue
            _write_turns(image_path, text, target)
    return write_data_yaml(out, data["names"], ["train", "val"])


def _write_turns(image_path: Path, text: str, target: Path) -> None:
    import imageio.v3 as iio

    image = np.asarray(iio.imread(image_path))
    for k, move in _ROTATED_POINT.items():
        turned = target.with_name(f"{target.stem}_rot{90 * k}{target.suffix}")
        iio.imwrite(turned, np.ascontiguousarray(np.rot90(image, k)), extension=target.suffix)
        lines = []
        for line in text.splitlines():
            tokens = line.split()
            if len(tokens) < 7:
                continue
            xy = np.array([float(t) for t in tokens[1:]]).reshape(-1, 2)
            x, y = move(xy[:, 0], xy[:, 1])
            moved = np.clip(np.stack([x, y], axis=1), 0.0, 1.0).ravel()
            lines.append(" ".join([tokens[0], *(f"{v:.6f}" for v in moved)]))
        _write_label(label_path(turned), "\n".join(lines))


def _write_label(path: Path, text: str) -> None:
    """Write a label file (parents made), ending in a newline when it holds any line."""
    from napari_livecell.core.atomic import write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text.rstrip("\n") + ("\n" if text.strip() else ""))
