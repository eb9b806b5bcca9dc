"""A dataset under review: which images there are, their state, and the order to review them in.

The index is a small json (``dataset.json``) beside one COCO json per image
(``cells/<stem>.json``): an edit rewrites one image's cells and this index,
never the whole dataset, so autosaving stays cheap however many images there
are. Every write is atomic, so a crash leaves the previous version whole.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from napari_livecell.core.atomic import write_text_atomic

INDEX_NAME = "dataset.json"
CELLS_FOLDER = "cells"
STATES = ("to review", "in progress", "done")
NEAR_THRESHOLD = 0.1  # a score within this of the confidence threshold is "near" it


class ReviewError(ValueError):
    """A dataset folder or index that cannot be used, with the reason."""


@dataclass
class ReviewEntry:
    """One image of the dataset.

    Attributes
    ----------
    name : str
        The image's file stem: names its layers and its cells file.
    image : str
        Path of the image file.
    state : str
        One of :data:`STATES`.
    segmented : bool
        Whether cells exist for it (predicted or annotated).
    n_cells, mean_score, near_threshold, unannotated : number
        The review signal: cell count, mean model score, share of cells
        scored near the threshold, confident cells no annotation covers.
    priority : float
        Higher first in the queue.
    """

    name: str
    image: str
    state: str = "to review"
    segmented: bool = False
    n_cells: int = 0
    mean_score: float = float("nan")
    near_threshold: float = 0.0
    unannotated: float = 0.0
    priority: float = 0.0


def review_priority(scores: np.ndarray, conf: float, unannotated_share: float = 0.0) -> dict:
    """How much an image likely needs review, from its cells' scores.

    Low mean score, many cells near the confidence threshold and confident
    cells missing from existing annotations (the ``curate`` signal) all raise it.
    """
    scores = np.asarray(scores, dtype=float)
    scores = scores[~np.isnan(scores)]
    mean = float(scores.mean()) if scores.size else float("nan")
    near = float(np.mean(scores < conf + NEAR_THRESHOLD)) if scores.size else 0.0
    priority = (1.0 - (mean if scores.size else 1.0)) + near + float(unannotated_share)
    return {
        "n_cells": int(scores.size),
        "mean_score": mean,
        "near_threshold": near,
        "unannotated": float(unannotated_share),
        "priority": priority,
    }


@dataclass
class ReviewIndex:
    """The index of a dataset under review, read from and written to ``dataset.json``."""

    folder: Path
    entries: list[ReviewEntry] = field(default_factory=list)
    categories: dict[int, str] = field(default_factory=lambda: {0: "cell"})
    source: str = ""

    @property
    def path(self) -> Path:
        """The index file."""
        return self.folder / INDEX_NAME

    def cells_path(self, name: str) -> Path:
        """The COCO json holding one image's cells."""
        return self.folder / CELLS_FOLDER / f"{name}.json"

    def entry(self, name: str) -> ReviewEntry:
        """The entry of an image by name."""
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise ReviewError(f"no image named {name!r} in this dataset")

    def queue(self) -> list[str]:
        """Image names in review order: unfinished first, then by priority, then by name."""
        done = [e for e in self.entries if e.state == "done"]
        waiting = [e for e in self.entries if e.state != "done"]
        waiting.sort(key=lambda e: (-e.priority, e.name))
        done.sort(key=lambda e: e.name)
        return [e.name for e in waiting + done]

    def set_state(self, name: str, state: str) -> None:
        """Change an image's state (and save the index)."""
        if state not in STATES:
            raise ReviewError(f"unknown state {state!r}: use one of {', '.join(STATES)}")
        self.entry(name).state = state
        self.save()

    def save(self) -> Path:
        """Write the index atomically."""
        payload = {
            "format": "napari-livecell review dataset",
            "version": 1,
            "source": self.source,
            "categories": {str(k): v for k, v in self.categories.items()},
            "images": [asdict(entry) for entry in self.entries],
        }
        text = json.dumps(payload, indent=1, allow_nan=True)
        return write_text_atomic(self.path, text)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> ReviewIndex:
        """Read ``dataset.json`` of a dataset folder."""
        folder = Path(folder)
        path = folder / INDEX_NAME
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            entries = [ReviewEntry(**item) for item in payload["images"]]
            categories = {int(k): str(v) for k, v in payload.get("categories", {"0": "cell"}).items()}
        except FileNotFoundError:
            raise ReviewError(f"{folder} holds no {INDEX_NAME}: not a review dataset") from None
        except (ValueError, KeyError, TypeError) as error:
            raise ReviewError(f"{path} is not a readable review index: {error}") from None
        return cls(folder, entries, categories, str(payload.get("source", "")))


def review_folder_for(source: str | os.PathLike) -> Path:
    """Where the review of a folder of images (or of a COCO json) is kept."""
    source = Path(source)
    base = source if source.is_dir() else source.parent
    return base / "napari-livecell-review"


def new_index(source: str | os.PathLike) -> ReviewIndex:
    """A fresh index over a folder of images, or over the images a COCO json names.

    Raises
    ------
    ReviewError
        No images found.
    """
    from napari_livecell.core.images import find_images

    source = Path(source)
    folder = review_folder_for(source)
    if source.is_dir():
        paths = [p for p in find_images([str(source)]) if folder not in p.parents]
    elif source.suffix.lower() == ".json":
        from napari_livecell.core.formats.coco import load_coco

        coco = load_coco(source)
        images_dir = source.parent / "images" if (source.parent / "images").is_dir() else source.parent
        paths = [images_dir / Path(str(entry["file_name"])).name for entry in coco["images"]]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise ReviewError(
                f"{len(missing)} image(s) of {source.name} not found in {images_dir}: {missing[0]}"
            )
    else:
        raise ReviewError(f"{source} is neither a folder of images nor a COCO json")
    if not paths:
        raise ReviewError(f"no images in {source}")
    names = [p.stem for p in paths]
    if len(set(names)) != len(names):
        raise ReviewError("two images share a file name stem; review them in separate folders")
    entries = [ReviewEntry(name=p.stem, image=str(p)) for p in paths]
    return ReviewIndex(folder, entries, source=str(source))


def open_index(source: str | os.PathLike) -> ReviewIndex:
    """The review of ``source``: resumed from its ``dataset.json`` when there is one."""
    source = Path(source)
    if source.is_dir() and (source / INDEX_NAME).is_file():
        return ReviewIndex.load(source)
    folder = review_folder_for(source)
    if (folder / INDEX_NAME).is_file():
        return ReviewIndex.load(folder)
    index = new_index(source)
    index.save()
    return index


def combined_coco(index: ReviewIndex) -> dict:
    """One COCO dict of every image with cells (for training): ids renumbered, files kept."""
    from napari_livecell.core.formats.coco import load_coco

    combined: dict = {"info": {"description": "napari-livecell review"}, "images": [], "annotations": []}
    combined["categories"] = [{"id": k + 1, "name": v} for k, v in sorted(index.categories.items())]
    for entry in index.entries:
        path = index.cells_path(entry.name)
        if not path.is_file():
            continue
        coco = load_coco(path)
        for image in coco["images"]:
            new_id = len(combined["images"]) + 1
            ids = {image["id"]: new_id}
            combined["images"].append({**image, "id": new_id, "file_name": Path(entry.image).name})
            for annotation in coco["annotations"]:
                if annotation["image_id"] in ids:
                    combined["annotations"].append(
                        {
                            **annotation,
                            "id": len(combined["annotations"]) + 1,
                            "image_id": ids[annotation["image_id"]],
                        }
                    )
    return combined
