"""YOLO segmentation txt labels and datasets that Ultralytics trains on as is.

One line per cell: ``class x1 y1 x2 y2 ...`` normalised to 0..1 by the image
width and height. Ultralytics' loader truncates the scaled coordinates to int
and fills with OpenCV's ``fillPoly`` (pixel centres), so points are written as
``(centre + 0.5) / size``; a 2-point row makes it drop the whole image, so
tiny cells are padded to 3 points (docs/ultralytics.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_livecell.core.atomic import write_text_atomic, write_with
from napari_livecell.core.segmentation import cell_boxes


def _cell_contour(mask: np.ndarray) -> np.ndarray | None:
    """Outer contour (pixel centres, ``(K, 2)`` x/y) of a cell's largest part.

    OpenCV's ``findContours`` (``RETR_EXTERNAL``) contour of largest area,
    the first of equals in OpenCV's order (the parts last found first),
    traced by the compiled tracer part by part.
    """
    from scipy import ndimage as ndi

    from napari_livecell.core._compiled import kernels

    outer_border = kernels("_trace_kernel").outer_border
    parts, n_parts = ndi.label(mask, structure=np.ones((3, 3), bool))
    boxes = ndi.find_objects(parts) if n_parts > 1 else []
    contour, largest = None, -1.0
    for part in range(n_parts, 0, -1):
        if n_parts == 1:
            points = outer_border(np.ascontiguousarray(mask, dtype=bool))
        else:
            rows, cols = boxes[part - 1]
            points = outer_border(parts[rows, cols] == part) + np.array([cols.start, rows.start])
        x, y = points[:, 0].astype(float), points[:, 1].astype(float)
        area = abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2
        if area > largest:
            contour, largest = points.astype(float), area
    if contour is None:
        return None
    while len(contour) < 3:
        contour = np.vstack([contour, contour[-1:]])
    return contour


def labels_to_yolo_lines(
    labels: np.ndarray, classes: Sequence[int] | np.ndarray | None = None, decimals: int = 6
) -> list[str]:
    """YOLO-seg lines for every cell of a label image.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(H, W)`` label image, 0 = background.
    classes : sequence of int, optional
        Class id of label ``i + 1``; all 0 when omitted.
    decimals : int
        Digits kept of each normalised coordinate.

    Returns
    -------
    list of str
        One line per cell. A cell in several parts is written as its largest part.
    """
    height, width = labels.shape
    lines = []
    for index, box in enumerate(cell_boxes(labels)):
        if box is None:
            continue
        contour = _cell_contour(labels[box] == index + 1)
        if contour is None:
            continue
        x = (contour[:, 0] + box[1].start + 0.5) / width
        y = (contour[:, 1] + box[0].start + 0.5) / height
        coordinates = np.column_stack([x, y]).clip(0, 1).ravel()
        class_id = 0 if classes is None else int(classes[index])
        lines.append(f"{class_id} " + " ".join(f"{value:.{decimals}f}" for value in coordinates))
    return lines


@dataclass
class YoloSample:
    """An image and its labels, to be written into a YOLO dataset."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    classes: Sequence[int] | None = None


def write_data_yaml(root: str | os.PathLike, names: dict[int, str], splits: Sequence[str]) -> Path:
    """Write ``data.yaml`` naming the classes and the image folders."""
    root = Path(root).resolve()
    lines = [f"path: {root}"]
    for split in splits:
        lines.append(f"{split}: images/{split}")
    if "val" not in splits:
        lines.append(f"val: images/{splits[0]}")
    lines.append("names:")
    lines += [f"  {class_id}: {name}" for class_id, name in sorted(names.items())]
    return write_text_atomic(root / "data.yaml", "\n".join(lines) + "\n")


def write_yolo_sample(root: Path, split: str, sample: YoloSample) -> None:
    """Write one image (PNG) and its label txt into ``root/{images,labels}/split``."""
    import imageio.v3 as iio

    image_path = root / "images" / split / f"{sample.name}.png"
    lines = labels_to_yolo_lines(sample.labels, sample.classes)
    write_with(image_path, lambda path: iio.imwrite(path, sample.image, extension=".png"))
    write_text_atomic(label_path(image_path), "\n".join(lines) + ("\n" if lines else ""))


class YoloFormatError(ValueError):
    """A YOLO label file that cannot be used, with the reason in the message."""


def write_yolo_txt(
    path: str | os.PathLike, labels: np.ndarray, classes: Sequence[int] | np.ndarray | None = None
) -> Path:
    """Write one image's cells as a YOLO-seg ``.txt`` (atomically)."""
    lines = labels_to_yolo_lines(labels, classes)
    return write_text_atomic(path, "\n".join(lines) + ("\n" if lines else ""))


def parse_yolo_lines(
    text: str, source: str = "labels", n_classes: int | None = None
) -> list[tuple[int, np.ndarray]]:
    """Parse YOLO-seg lines into ``(class, (K, 2) normalised xy)`` pairs.

    Raises
    ------
    YoloFormatError
        Non-numeric tokens, an odd number of coordinates, fewer than 3 points,
        coordinates outside 0..1 (Ultralytics drops such images), or a class
        id beyond the dataset's names.
    """
    cells = []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"{source} line {number}"
        try:
            class_id = int(float(tokens[0]))
            values = np.array([float(t) for t in tokens[1:]])
        except ValueError:
            raise YoloFormatError(f"{where}: not a row of numbers") from None
        if len(values) == 4:
            raise YoloFormatError(f"{where}: a box (detection label), not a polygon")
        if len(values) % 2:
            raise YoloFormatError(f"{where}: odd number of coordinates ({len(values)})")
        if len(values) < 6:
            raise YoloFormatError(f"{where}: a polygon needs at least 3 points")
        if values.min() < 0 or values.max() > 1.01:
            raise YoloFormatError(
                f"{where}: coordinates must be normalised to 0..1 "
                f"(found {values.min():.3f}..{values.max():.3f})"
            )
        if class_id < 0 or (n_classes is not None and class_id >= n_classes):
            raise YoloFormatError(
                f"{where}: class {class_id} is not in the dataset's {n_classes} class name(s)"
            )
        cells.append((class_id, values.reshape(-1, 2)))
    return cells


def yolo_to_labels(
    cells: list[tuple[int, np.ndarray]], height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise parsed YOLO polygons the way Ultralytics' loader does.

    Points are scaled by the image size, truncated to int and filled by
    OpenCV's ``fillPoly`` rules (:mod:`._fill_kernel`, pixel for pixel), so
    what napari shows is what training will see.

    Returns
    -------
    labels : numpy.ndarray
        ``(H, W)`` int32, cells ``1..N`` in file order (earlier cells on top).
    classes : numpy.ndarray
        Class id of each label.
    """
    from napari_livecell.core._compiled import kernels

    fill_polygon = kernels("formats._fill_kernel").fill_polygon
    labels = np.zeros((height, width), dtype=np.int32)
    classes = []
    mask = np.zeros((height, width), dtype=np.uint8)
    for class_id, points in cells:
        mask[:] = 0
        pixels = (points * [width, height]).astype(np.int32).astype(np.int64)
        fill_polygon(mask, np.ascontiguousarray(pixels[:, 0]), np.ascontiguousarray(pixels[:, 1]))
        free = (mask > 0) & (labels == 0)
        if not free.any():
            continue
        classes.append(class_id)
        labels[free] = len(classes)
    return labels, np.asarray(classes, dtype=np.int32)


def read_data_yaml(path: str | os.PathLike) -> dict:
    """Class names and split folders of a YOLO ``data.yaml``."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        # YAML's messages run over several lines (the text and a caret): the first says what
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise YoloFormatError(f"{path.name} is not valid YAML: {reason}") from None
    if not isinstance(data, dict) or "names" not in data:
        raise YoloFormatError(f"{path.name} has no 'names' of classes")
    names = data["names"]
    if isinstance(names, list):
        names = dict(enumerate(names))
    try:
        data["names"] = {int(k): str(v) for k, v in names.items()}
    except (AttributeError, TypeError, ValueError, OverflowError):
        raise YoloFormatError(
            f"{path.name}: 'names' must be a list of class names or a mapping of class ids to names"
        ) from None
    return data


# the dataset layout: data.yaml names split folders of images; each image's labels lie at the path
# Ultralytics derives from it (see label_path)


def dataset_root(data_yaml: str | os.PathLike, data: dict) -> Path:
    """The folder a ``data.yaml``'s split folders are relative to (its ``path``, else its own folder)."""
    data_yaml = Path(data_yaml)
    root = Path(data.get("path") or data_yaml.parent)
    return root if root.is_absolute() else data_yaml.parent / root


def split_folder(data: dict, root: Path, split: str) -> Path | None:
    """The image folder of ``split`` (``train``, ``val``); ``None`` when it is not one folder."""
    entry = data.get(split)
    if not isinstance(entry, str):
        return None  # lists and txt files of images are Ultralytics' to check
    return root / entry


def label_path(image: str | os.PathLike) -> Path:
    """Where an image's label txt lies: Ultralytics' rule, the last ``/images/`` becomes ``/labels/``."""
    head, sep, tail = str(image).rpartition(f"{os.sep}images{os.sep}")
    return Path(f"{head}{os.sep}labels{os.sep}{tail}" if sep else image).with_suffix(".txt")


def split_images(folder: Path) -> list[Path]:
    """The images under a split folder, in name order."""
    from napari_livecell.core.images import IMAGE_SUFFIXES

    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def dataset_splits(data_yaml: str | os.PathLike) -> tuple[dict, dict[str, Path | None]]:
    """A dataset's ``data.yaml`` and its ``train`` and ``val`` image folders.

    Raises
    ------
    YoloFormatError
        ``data.yaml`` unreadable or without class names.
    """
    data = read_data_yaml(data_yaml)
    root = dataset_root(data_yaml, data)
    return data, {split: split_folder(data, root, split) for split in ("train", "val")}


def validation_picks(n_items: int, fraction: float, seed: int = 0) -> set[int]:
    """Positions held out for validation: a seeded random share, at least one when asked."""
    if n_items < 2 or fraction <= 0:
        return set()
    order = np.random.default_rng(seed).permutation(n_items)
    return set(order[: max(1, round(fraction * n_items))].tolist())


def write_yolo_dataset(
    out: str | os.PathLike,
    samples: Sequence[YoloSample],
    names: dict[int, str],
    val_fraction: float = 0.0,
    seed: int = 0,
) -> Path:
    """Write ``images/``, ``labels/`` and ``data.yaml`` that Ultralytics trains on as is.

    Parameters
    ----------
    out : path
        Dataset folder.
    samples : sequence of YoloSample
        Images and their label images.
    names : dict
        Class id -> name.
    val_fraction : float
        Share of samples held out as ``val`` (0 writes a single ``train`` split,
        also used for validation).
    seed : int
        Seed of the split.

    Returns
    -------
    Path
        ``data.yaml``.
    """
    out = Path(out)
    val = validation_picks(len(samples), val_fraction, seed)
    for position, sample in enumerate(samples):
        write_yolo_sample(out, "val" if position in val else "train", sample)
    return write_data_yaml(out, names, ["train", "val"] if val else ["train"])
