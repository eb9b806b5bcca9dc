"""``napari-livecell measure``: per-cell measurements and per-image summaries as CSV."""

from __future__ import annotations

import argparse
import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_livecell.cli.common import (
    CommandError,
    ensure_output_file,
    pixel_size_um,
    progress_bar,
)

LABEL_SUFFIXES = (".tif", ".tiff")
# what `segment` writes beside the labels and is never a label image itself
NOT_LABELS = ("_outlines.tif",)


def add_parser(commands) -> None:
    """Register the subcommand."""
    measure = commands.add_parser(
        "measure",
        help="measure every cell (area, perimeter, shape, intensity) into CSV",
        description=(
            "Measure the cells of label images (TIFFs: one frame or a stack; a COCO json, whose "
            "scores, classes and statuses are kept; or an OME-Zarr store's labels/cells) with "
            "skimage.measure.regionprops_table, and write a per-cell CSV and a per-image summary CSV "
            "(<out>_summary.csv: cell count, confluence, mean area). Columns and units: docs/measurements.md."
        ),
    )
    measure.add_argument(
        "labels",
        nargs="+",
        metavar="LABELS",
        help="label TIFFs, folders of them, globs, COCO json, or OME-Zarr stores (their labels/cells)",
    )
    measure.add_argument(
        "--images",
        default=None,
        help="intensity image (one LABELS; a TIFF, PNG or OME-Zarr) or folder of images named like the "
        "labels (<stem>_labels.tif -> <stem>.tif/.png/...); without it the intensity columns are empty",
    )
    measure.add_argument(
        "--pixel-size", type=pixel_size_um, default=None, help="micrometres per pixel (default: px)"
    )
    measure.add_argument("--out", required=True, help="per-cell CSV; the summary goes beside it")
    measure.set_defaults(handler=run)


@dataclass
class LabelSource:
    """One labels input: its name (the CSV's ``image``), data, cell table and image."""

    name: str
    labels: Any
    features: Any = None
    image: Any = None
    frame_names: list[str] | None = None
    file_names: list[str] | None = None  # a COCO json's images, frame by frame


def find_label_files(patterns: list[str]) -> list[Path]:
    """Label files named, in folders (their TIFFs, name order) or matched by globs.

    Raises
    ------
    FileNotFoundError
        A pattern that matches nothing.
    """
    found: list[Path] = []
    from napari_livecell.core.formats.ome_zarr import has_labels

    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir() and has_labels(path):  # an OME-Zarr store's labels/cells
            found.append(path)
        elif path.is_dir():
            matches = sorted(p for p in path.iterdir() if _is_label_file(p))
            if not matches:
                raise FileNotFoundError(f"no label TIFFs in folder {path}")
            found += matches
        elif path.exists():
            found.append(path)
        elif glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
            matches = [p for p in matches if _is_label_file(p) or p.suffix.lower() == ".json"]
            if not matches:
                raise FileNotFoundError(f"no label files match {pattern!r}")
            found += matches
        else:
            raise FileNotFoundError(f"labels not found: {path}")
    return list(dict.fromkeys(p.resolve() for p in found))


def _is_label_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.endswith(LABEL_SUFFIXES) and not name.endswith(NOT_LABELS)


def image_stem(labels_path: Path) -> str:
    """The image a label file belongs to: ``x_labels.tif`` -> ``x``."""
    return labels_path.stem.removesuffix("_labels")


def find_image(folder: Path, stem: str) -> Path:
    """The image called ``stem`` in ``folder`` (any image suffix, never a segmentation output).

    Raises
    ------
    FileNotFoundError
        No such image.
    """
    from napari_livecell.core.images import IMAGE_SUFFIXES, is_output_name

    for path in sorted(folder.iterdir()):
        if path.stem == stem and path.suffix.lower() in IMAGE_SUFFIXES and not is_output_name(path):
            return path
    raise FileNotFoundError(f"no image named {stem}.* in {folder} for its labels")


def find_named_image(folder: Path, file_name: str) -> Path:
    """The image a COCO json names (its ``file_name``) in ``folder``: as named, by name, or by stem.

    Raises
    ------
    FileNotFoundError
        No such image.
    """
    for candidate in (folder / file_name, folder / Path(file_name).name):
        if candidate.is_file():
            return candidate
    return find_image(folder, Path(file_name).stem)


def images_of(folder: Path, source: LabelSource):
    """The intensity image(s) of a labels input, from ``--images DIR``.

    A COCO json names its images (``file_name``, one per frame, stacked); a
    label TIFF goes by its own name (``<stem>_labels.tif`` -> ``<stem>.*``).
    """
    import numpy as np

    from napari_livecell.core.images import read_image

    if not source.file_names:
        return read_image(find_image(folder, source.name))
    frames = [read_image(find_named_image(folder, name)) for name in source.file_names]
    return frames[0] if len(frames) == 1 else np.stack(frames)


def read_labels(path: Path) -> LabelSource:
    """A label TIFF (squeezed; integer), a COCO json (with its cell table and image, when found) or OME-Zarr.

    An OME-Zarr store's ``labels/cells`` are read frame by frame; an image in
    the same store is their intensity image.
    """
    import numpy as np

    if path.is_dir():
        from napari_livecell.core.formats.ome_zarr import read_labels as read_ome_zarr_labels
        from napari_livecell.core.images import input_stem, is_ome_zarr_image, read_image

        labels = read_ome_zarr_labels(path).data
        image = read_image(path) if is_ome_zarr_image(path) else None
        return LabelSource(input_stem(path), labels, image=image)

    if path.suffix.lower() == ".json":
        from napari_livecell.core.formats.coco_stack import read_coco_stack, read_images
        from napari_livecell.layers import cell_table

        stack = read_coco_stack(path)
        found = stack.image_files()
        image = read_images(found) if found is not None else None
        names = stack.file_names
        frame_names = [Path(n).stem for n in names] if len(names) > 1 else None
        file_names = [str(n) for n in names] if names and all(names) else None
        features = cell_table(**stack.cell_columns())
        return LabelSource(path.stem, stack.labels(lazy=True), features, image, frame_names, file_names)
    import tifffile

    from napari_livecell.core.images import check_labels

    try:
        labels = np.squeeze(tifffile.imread(path))
    except (tifffile.TiffFileError, ValueError) as error:
        raise CommandError(f"{path} is not a readable TIFF ({error})") from error
    if labels.ndim < 2:
        raise CommandError(f"{path.name} is not a label image (shape {labels.shape})")
    check_labels(labels, path.name, "give label images (segment gives <image>_labels.tif)")
    return LabelSource(image_stem(path), labels)


def run(args: argparse.Namespace) -> int:
    """Measure every labels input; write the per-cell and summary CSVs."""
    import pandas as pd

    from napari_livecell.core.analysis.measure import (
        check_pixel_size,
        iter_measure,
        summary_path,
        with_image_name,
        write_measurements_csv,
    )
    from napari_livecell.core.images import is_ome_zarr_image, read_image

    pixel_size = check_pixel_size(args.pixel_size)
    if Path(args.out).suffix.lower() != ".csv":  # refused before its folder is made
        raise CommandError(f"--out {args.out} must be a .csv file")
    out = ensure_output_file(args.out, "--out")
    paths = find_label_files(args.labels)
    images = Path(args.images) if args.images else None
    if images is not None and not images.exists():
        raise FileNotFoundError(f"--images {images} does not exist")
    if images is not None and (images.is_file() or is_ome_zarr_image(images)) and len(paths) > 1:
        raise CommandError(f"--images {images} is one image but {len(paths)} label files were given")
    cells, summaries = [], []
    with progress_bar(len(paths), "measure", unit="img") as bar:
        for path in paths:
            source = read_labels(path)
            if images is not None:
                one_image = images.is_file() or is_ome_zarr_image(images)
                source.image = read_image(images) if one_image else images_of(images, source)
            steps = iter_measure(source.labels, source.image, pixel_size, source.features)
            while True:
                try:
                    next(steps)
                except StopIteration as done:
                    result = done.value
                    break
            cells.append(_named(with_image_name(result.cells, source.name), source.frame_names))
            summaries.append(_named(with_image_name(result.summary, source.name), source.frame_names))
            bar.update(1)
    cell_table = pd.concat(cells, ignore_index=True)
    summary_table = pd.concat(summaries, ignore_index=True)
    written = [write_measurements_csv(out, cell_table)]
    written.append(write_measurements_csv(summary_path(out), summary_table))
    print(
        f"{len(cell_table)} cells in {len(paths)} label file(s), {len(summary_table)} frame(s), "
        f"in {'um' if pixel_size is not None else 'px'}; wrote {', '.join(str(p) for p in written)}"
    )
    return 0


def _named(table, frame_names: list[str] | None):
    """A COCO stack's frames are images of their own: name each row after its frame's file."""
    if frame_names:
        table["image"] = [frame_names[int(f)] for f in table["frame"]]
    return table
