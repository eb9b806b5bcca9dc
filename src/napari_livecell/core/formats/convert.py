"""Conversions between COCO json, YOLO-seg datasets and label TIFFs, dispatched through one table.

``napari-livecell convert`` finds what its input is (:func:`source_kind`) and
looks the conversion up in :data:`CONVERSIONS`: adding a format pair is one
entry, not a branch in the command. Entries name their function by module
path, resolved when it runs (as npe2 manifests name commands): COCO -> YOLO
is the training domain's dataset writer (the same train/val split and 8-bit
frames as ``train``), which sits above this module.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
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
    from napari_livecell.core.formats.yolo import (
        label_path,
        parse_yolo_lines,
        read_data_yaml,
        split_images,
        yolo_to_labels,
    )
    from napari_livecell.core.images import read_image

    root = Path(root)
    names = read_data_yaml(root / "data.yaml")["names"]
    entries: list[CocoImage] = []
    images = split_images(root / "images")
    if not images:
        raise FileNotFoundError(f"no images under {root / 'images'}")
    for image_path in images:
        relative = image_path.relative_to(root / "images")
        txt = label_path(image_path)
        height, width = read_image(image_path).shape[:2]
        cells = parse_yolo_lines(txt.read_text(), txt.name, len(names)) if txt.exists() else []
        labels, classes = yolo_to_labels(cells, height, width)
        segmentation = Segmentation.from_labels(labels, classes=classes, class_names=names)
        entries.append(CocoImage(len(entries) + 1, str(relative), segmentation))
    return write_coco(out, build_coco(entries, class_names=names))


def _wrote_file(function: Callable, source: Path, out: Path, options: dict) -> str:
    return f"wrote {function(source, out)}"


@dataclass(frozen=True)
class Conversion:
    """One entry of :data:`CONVERSIONS`.

    Attributes
    ----------
    function : str
        ``module:function`` that converts; called as described by ``call``.
    writes : str
        ``"folder"`` or ``"file"``: what the output is (checked writable before any work).
    needs : tuple of str
        Options the conversion cannot do without (``images``).
    call : callable
        ``call(function, source, out, options) -> str``: runs it and says what was written.
    """

    function: str
    writes: str
    needs: tuple[str, ...] = ()
    call: Callable[[Callable, Path, Path, dict], str] = _wrote_file

    def resolve(self) -> Callable:
        """The converting function, imported now."""
        module, _, name = self.function.partition(":")
        return getattr(importlib.import_module(module), name)


def _coco_to_yolo(function: Callable, source: Path, out: Path, options: dict) -> str:
    data_yaml = function(source, options["images"], out, val_fraction=options["val"], seed=options["seed"])
    return f"wrote YOLO dataset {data_yaml}"


def _coco_to_tif(function: Callable, source: Path, out: Path, options: dict) -> str:
    return f"wrote {len(function(source, out))} label TIFF(s) to {out}"


def _tif_to_coco(function: Callable, source: Path, out: Path, options: dict) -> str:
    return f"wrote {function(label_tiff_files(source), out, options.get('reference'))}"


# (what the input is, --to) -> how to convert
CONVERSIONS: dict[tuple[str, str], Conversion] = {
    ("coco", "yolo"): Conversion(
        "napari_livecell.core.training.data:coco_to_yolo_dataset", "folder", ("images",), _coco_to_yolo
    ),
    ("coco", "tif"): Conversion(f"{__name__}:coco_to_label_tiffs", "folder", call=_coco_to_tif),
    ("yolo", "coco"): Conversion(f"{__name__}:yolo_dataset_to_coco", "file"),
    ("tif", "coco"): Conversion(f"{__name__}:label_tiffs_to_coco", "file", call=_tif_to_coco),
}
FORMAT_NAMES = {"coco": "COCO json", "yolo": "a YOLO dataset", "tif": "label TIFFs"}


def label_tiff_files(folder: Path) -> list[Path]:
    """The ``*_labels.tif`` files of a folder, in name order."""
    return sorted(Path(folder).glob("*_labels.tif"))


def source_kind(source: str | os.PathLike) -> str:
    """What a conversion input is: ``coco`` (a json), ``yolo`` (a folder with data.yaml) or ``tif``.

    Raises
    ------
    FileNotFoundError
        No such input.
    ValueError
        None of these, or a folder without ``*_labels.tif``.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"input not found: {source}")
    if source.suffix.lower() == ".json":
        return "coco"
    if source.is_dir() and (source / "data.yaml").exists():
        return "yolo"
    if source.is_dir():
        if not label_tiff_files(source):
            raise ValueError(f"no *_labels.tif files in {source}")
        return "tif"
    raise ValueError(f"{source} is not a COCO json, a YOLO dataset folder or a folder of *_labels.tif")


def conversion_for(kind: str, target: str) -> Conversion:
    """The table's entry from ``kind`` to ``target``.

    Raises
    ------
    ValueError
        No such conversion: the message names the targets ``kind`` converts to.
    """
    if (kind, target) in CONVERSIONS:
        return CONVERSIONS[(kind, target)]
    targets = " or --to ".join(to for (source, to) in CONVERSIONS if source == kind)
    if kind == target:
        raise ValueError(f"the input is already {FORMAT_NAMES[kind]}: use --to {targets}")
    raise ValueError(f"{FORMAT_NAMES[kind]} converts --to {targets}")
