"""Conversions between COCO json, YOLO-seg datasets and label TIFFs."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np

from napari_livecell.core.segmentation import Segmentation

from .coco import (
    CocoFormatError,
    CocoImage,
    annotations_by_image,
    annotations_to_labels,
    build_coco,
    check_image_entry,
    load_coco,
    write_coco,
)


def coco_to_label_tiffs(coco_json: str | os.PathLike, out: str | os.PathLike) -> list[Path]:
    """Write one ``<image stem>_labels.tif`` (uint16/uint32) per image of a COCO json.

    A stack's frames (images with a ``frame`` field) get ``<stem>_tNNNN_labels.tif``.

    Raises
    ------
    ValueError
        Two images would write the same file (e.g. ``plateA/well1.tif`` and
        ``plateB/well1.tif``; names are compared without case): refused
        before anything is written.
    """
    import tifffile

    from napari_livecell.core.atomic import write_with

    coco = load_coco(coco_json)
    grouped = annotations_by_image(coco)
    out = Path(out)
    planned: list[tuple[dict, tuple[int, int], Path]] = []
    owners: dict[str, str] = {}
    for entry in coco["images"]:
        size = check_image_entry(entry, Path(coco_json).name)
        stem = Path(str(entry["file_name"])).stem
        suffix = f"_t{entry['frame']:04d}" if "frame" in entry else ""
        name = f"{stem}{suffix}_labels.tif"
        described = str(entry["file_name"]) + (f" (frame {entry['frame']})" if suffix else "")
        if name.casefold() in owners:
            raise ValueError(
                f"images {owners[name.casefold()]} and {described} of {Path(coco_json).name} would both "
                f"be written as {name}: give each image a file name of its own"
            )
        owners[name.casefold()] = described
        planned.append((entry, size, out / name))
    written = []
    for entry, (height, width), target in planned:
        labels = annotations_to_labels(grouped.get(entry["id"], []), height, width)
        labels = labels.astype(np.uint16 if labels.max() < 65536 else np.uint32)
        write_with(target, partial(tifffile.imwrite, data=labels, compression="zlib"))
        written.append(target)
    return written


def label_tiffs_to_coco(
    label_files: list[Path],
    out: str | os.PathLike,
    reference_json: str | os.PathLike | None = None,
) -> Path:
    """Build a COCO json from label TIFFs (``<stem>_labels.tif`` -> image ``<stem>.tif``).

    With ``reference_json`` the image ids and file names are taken from it, and
    a label image whose size differs from the json's width/height is an error.
    """
    import tifffile

    reference, reference_name = None, ""
    if reference_json is not None:
        coco = load_coco(reference_json)
        reference = {Path(str(e["file_name"])).stem: e for e in coco["images"]}
        reference_name = Path(reference_json).name
    entries: list[CocoImage] = []
    for index, path in enumerate(sorted(label_files), start=1):
        labels = tifffile.imread(path)
        if labels.ndim != 2:
            raise ValueError(f"{path.name}: expected a 2-D label image, got shape {labels.shape}")
        stem = path.stem.removesuffix("_labels")
        image_id, file_name = index, f"{stem}.tif"
        if reference is not None:
            if stem not in reference:
                raise CocoFormatError(f"{path.name}: no image {stem!r} in {reference_name}")
            entry = reference[stem]
            expected = check_image_entry(entry, reference_name)
            if labels.shape != expected:
                raise CocoFormatError(
                    f"{path.name} is {labels.shape[1]} x {labels.shape[0]} but "
                    f"{reference_name} says {expected[1]} x {expected[0]}"
                )
            image_id, file_name = entry["id"], entry["file_name"]
        entries.append(CocoImage(image_id, str(file_name), Segmentation.from_labels(labels)))
    return write_coco(out, build_coco(entries))


def yolo_dataset_to_coco(root: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Turn a YOLO-seg dataset (``data.yaml``, ``images/``, ``labels/``) into one COCO json."""
    from napari_livecell.core.formats.yolo import parse_yolo_lines, read_data_yaml, yolo_to_labels
    from napari_livecell.core.images import IMAGE_SUFFIXES, read_image

    root = Path(root)
    names = read_data_yaml(root / "data.yaml")["names"]
    entries: list[CocoImage] = []
    images = sorted(p for p in (root / "images").rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise FileNotFoundError(f"no images under {root / 'images'}")
    for image_path in images:
        relative = image_path.relative_to(root / "images")
        txt = (root / "labels" / relative).with_suffix(".txt")
        height, width = read_image(image_path).shape[:2]
        cells = parse_yolo_lines(txt.read_text(), txt.name, len(names)) if txt.exists() else []
        labels, classes = yolo_to_labels(cells, height, width)
        segmentation = Segmentation.from_labels(labels, classes=classes, class_names=names)
        entries.append(CocoImage(len(entries) + 1, str(relative), segmentation))
    return write_coco(out, build_coco(entries, class_names=names))
