"""A COCO json read as one label stack: frames in order, cell ids, per-cell rows, its image files.

The napari reader (:func:`napari_livecell.io.read.read_coco_layers`) and
``napari-livecell measure`` both read COCO through :func:`read_coco_stack`,
so that a file gives the same cells, ids and classes wherever it is opened.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_livecell.core.limits import MAX_LABEL_ID

from .coco import (
    CocoFormatError,
    annotations_by_image,
    annotations_to_labels,
    check_image_entry,
    load_coco,
    normalize_coco,
)


@dataclass
class CocoStack:
    """A COCO json's images as the frames of one stack.

    Attributes
    ----------
    path : Path
        The json.
    coco : dict
        Its content (normalised).
    images : list of dict
        Image records in frame order (by ``frame`` when every image has one).
    per_frame : list of list of dict
        Each frame's annotations.
    ids : list of list of int
        Each annotation's cell id: the ``label`` the plugin wrote when every
        annotation has a distinct one, else 1..N across the stack.
    height, width : int
        The frames' size (one for all).
    class_of : dict
        COCO category id -> class id (the categories' order).
    names : dict
        Class id -> name.
    """

    path: Path
    coco: dict
    images: list[dict]
    per_frame: list[list[dict]]
    ids: list[list[int]]
    height: int
    width: int
    class_of: dict[int, int]
    names: dict[int, str]

    @property
    def file_names(self) -> list[str]:
        """The images' ``file_name`` in frame order."""
        return [str(image.get("file_name")) for image in self.images]

    @property
    def label_dtype(self) -> np.dtype:
        """int32, as every label layer here, unless a written id needs int64 (the writer keeps any id)."""
        largest = max((max(frame_ids) for frame_ids in self.ids if frame_ids), default=0)
        return np.dtype(np.int64 if largest > MAX_LABEL_ID else np.int32)

    def frame_labels(self, frame: int) -> np.ndarray:
        """Frame ``frame``'s label image (:attr:`label_dtype`), with the stack's cell ids."""
        return _frame_labels(
            self.per_frame[frame], self.height, self.width, self.ids[frame], self.label_dtype
        )

    def labels(self, lazy: bool = False) -> Any:
        """All frames' labels: ``(H, W)`` for one image, else ``(T, H, W)`` (``lazy``: dask, on demand)."""
        if len(self.images) == 1:
            return self.frame_labels(0)
        if not lazy:
            return np.stack([self.frame_labels(frame) for frame in range(len(self.images))])
        import dask
        import dask.array as da

        rasterise = dask.delayed(_frame_labels)
        dtype = self.label_dtype
        return da.stack(
            [
                da.from_delayed(
                    rasterise(annotations, self.height, self.width, frame_ids, dtype),
                    (self.height, self.width),
                    dtype,
                )
                for annotations, frame_ids in zip(self.per_frame, self.ids)
            ]
        )

    def cell_columns(self) -> dict[str, list]:
        """One row per cell: ``ids``, ``frames``, ``scores``, ``classes`` (names), ``areas``, ``statuses``."""
        annotations = [
            (frame, a) for frame, frame_annotations in enumerate(self.per_frame) for a in frame_annotations
        ]

        def number(value: Any, default: float) -> float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return default
            return float(value)

        def score(annotation: dict) -> float:
            return number(annotation.get("score", 1.0), float("nan"))

        def name(annotation: dict) -> str:
            category = annotation.get("category_id")
            return self.names[
                self.class_of.get(category, min(self.names)) if isinstance(category, int) else min(self.names)
            ]

        def area(annotation: dict) -> int:
            value = number(annotation.get("area", 0), 0.0)
            return round(value) if np.isfinite(value) else 0

        return {
            "ids": [cell for frame_ids in self.ids for cell in frame_ids],
            "frames": [frame for frame, _ in annotations],
            "scores": [score(a) for _, a in annotations],
            "classes": [name(a) for _, a in annotations],
            "areas": [area(a) for _, a in annotations],
            "statuses": [str(a.get("status", _status_without_one(a))) for _, a in annotations],
        }

    def image_files(self) -> list[Path] | None:
        """The images' files (see :func:`find_image_file`); ``None`` when any is missing."""
        found = [find_image_file(self.path, name) for name in self.file_names]
        if not found or any(path is None for path in found):
            return None
        return [path for path in found if path is not None]


def read_images(found: list[Path]) -> Any:
    """Image files as one array: the image itself, or a stack read lazily (dask) frame by frame."""
    from napari_livecell.core.images import read_image

    if len(found) == 1:
        return read_image(found[0])
    import dask
    import dask.array as da

    first = read_image(found[0])
    return da.stack([da.from_delayed(dask.delayed(read_image)(p), first.shape, first.dtype) for p in found])


def read_coco_stack(path: str | os.PathLike, parse: Callable[[Path], Any] | None = None) -> CocoStack:
    """Read a COCO json as one stack (see :class:`CocoStack`).

    Parameters
    ----------
    path : path
        The json.
    parse : callable, optional
        ``parse(path)``: the json's content, parsed (the napari reader's claim
        check has parsed it already); unreadable json is then read again by
        :func:`.coco.load_coco`, whose message says what is wrong.

    Raises
    ------
    CocoFormatError
        Not COCO, no images, images of different sizes, or annotations of unknown images.
    """
    json_path = Path(path)
    coco = None
    if parse is not None:
        try:
            coco = normalize_coco(parse(json_path), json_path.name)
        except CocoFormatError:
            raise
        except ValueError:  # not json, or not UTF-8: load_coco says which, in one line
            coco = None
    if coco is None:
        coco = load_coco(json_path)
    images = _frame_order(coco["images"])
    if not images:
        raise CocoFormatError(f"{json_path.name} lists no images")
    sizes = {check_image_entry(image, json_path.name) for image in images}
    if len(sizes) > 1:
        raise CocoFormatError(
            f"{json_path.name} holds images of {len(sizes)} different sizes; "
            "split it to open them as one stack"
        )
    (height, width) = sizes.pop()
    grouped = annotations_by_image(coco)
    stray = set(grouped) - {image["id"] for image in images}
    if stray:
        raise CocoFormatError(
            f"{json_path.name}: annotations refer to image id(s) {sorted(stray, key=str)[:3]} "
            "that are not in 'images'"
        )
    category_ids = sorted(int(c["id"]) for c in coco["categories"])
    # class ids are the categories' order, as the writer and the YOLO conversion number them
    class_of = {category: index for index, category in enumerate(category_ids)}
    names = {class_of[int(c["id"])]: str(c.get("name", c["id"])) for c in coco["categories"]}
    per_frame = [grouped.get(image["id"], []) for image in images]
    return CocoStack(json_path, coco, images, per_frame, _cell_ids(per_frame), height, width, class_of, names)


def find_image_file(json_path: Path, file_name: str) -> Path | None:
    """An image a COCO json names: beside it, in ``images/`` there, or in ``../images``."""
    from napari_livecell.core.images import IMAGE_SUFFIXES

    name = Path(str(file_name)).name
    # files saved without an extension by earlier versions: try the image suffixes
    names = [name] if Path(name).suffix else [name + suffix for suffix in IMAGE_SUFFIXES]
    for folder in (json_path.parent, json_path.parent / "images", json_path.parent.parent / "images"):
        for candidate in (folder / n for n in names):
            if candidate.is_file():
                return candidate
    return None


def _status_without_one(annotation: dict) -> str:
    """A cell the file gives no status: a model's prediction has a score, a person's annotation none."""
    return "predicted" if isinstance(annotation.get("score"), (int, float)) else "annotated"


def _frame_order(images: list[dict]) -> list[dict]:
    if all("frame" in image for image in images):
        return sorted(images, key=lambda image: (image["frame"], str(image.get("file_name"))))
    return list(images)


def _cell_ids(per_frame: list[list[dict]]) -> list[list[int]]:
    """Each annotation's cell id: the ``label`` we wrote when each frame's are distinct, else 1..N.

    A tracked stack names a cell by its track in every frame: ids repeat across frames, never within one.
    """
    written: list[Any] = [a.get("label") for frame_annotations in per_frame for a in frame_annotations]
    usable = all(isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**63 for v in written)
    distinct = all(
        len({a.get("label") for a in frame_annotations}) == len(frame_annotations)
        for frame_annotations in per_frame
    )
    if not (usable and distinct):
        written = list(range(1, len(written) + 1))
    ids, start = [], 0
    for frame_annotations in per_frame:
        ids.append(written[start : start + len(frame_annotations)])
        start += len(frame_annotations)
    return ids


def _frame_labels(
    frame_annotations: list[dict], height: int, width: int, ids: list[int], dtype: Any = np.int32
) -> np.ndarray:
    order = annotations_to_labels(frame_annotations, height, width)
    lookup = np.asarray([0, *ids], dtype=dtype)
    return lookup[order]
