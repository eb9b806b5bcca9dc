"""YOLO segmentation txt labels and datasets that Ultralytics trains on as is.

One line per cell: ``class x1 y1 x2 y2 ...`` normalised to 0..1 by the image
width and height. Ultralytics' loader truncates the scaled coordinates to int
and fills with OpenCV (pixel centres), so points are written as
``(centre + 0.5) / size``; a 2-point row makes it drop the whole image, so
tiny cells are padded to 3 points (see DOMAIN.md).
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
    """Outer contour (pixel centres, ``(K, 2)`` x/y) of a cell's largest part."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(float)
    while len(contour) < 3:
        contour = np.vstack([contour, contour[-1:]])
    return contour


def labels_to_yolo_lines(
    labels: np.ndarray, classes: Sequence[int] | None = None, decimals: int = 6
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
    label_path = root / "labels" / split / f"{sample.name}.txt"
    lines = labels_to_yolo_lines(sample.labels, sample.classes)
    write_with(image_path, lambda path: iio.imwrite(path, sample.image, extension=".png"))
    write_text_atomic(label_path, "\n".join(lines) + ("\n" if lines else ""))
