"""A COCO json written as frames come: one line per frame in a cells file, one json at the end.

A streamed run appends each finished frame's image entry and annotations to
a JSON-lines *cells file* (a frame written band by band: its image entry,
then lines of annotations as its cells are final) and keeps nothing of
the frame in memory; :func:`write_coco_stream` then writes the run's COCO
json from the cells files of all its inputs, one frame at a time, numbering
images and annotations as :func:`.coco.build_coco` does. The result equals
``build_coco`` of the same frames, key for key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .coco import segmentation_annotations


def frame_line(segmentation, file_name: str, frame: int | None, with_scores: bool = True) -> bytes:
    """One frame's line of a cells file: its image entry and annotations (ids from 1 within it)."""
    import orjson

    height, width = segmentation.labels.shape
    image: dict = {"id": 0, "file_name": file_name, "width": int(width), "height": int(height)}
    if frame is not None:
        image["frame"] = frame
    annotations = segmentation_annotations(segmentation, 0, 1, with_scores)
    return orjson.dumps({"image": image, "annotations": annotations}) + b"\n"


def summary_line(image: dict | None, annotations: list[dict]) -> bytes:
    """A cells-file line of annotations made elsewhere (a frame written band by band).

    ``image``: the frame's image entry, on its first line; ``None`` on the
    lines of its annotations that follow.
    """
    import orjson

    record: dict = {"annotations": annotations}
    if image is not None:
        record = {"image": image, **record}
    return orjson.dumps(record) + b"\n"


def _lines(cells_files: Iterable[str | os.PathLike]) -> Iterator[dict]:
    import orjson

    for path in cells_files:
        with open(path, "rb") as lines:
            for line in lines:
                if line.strip():
                    yield orjson.loads(line)


def write_coco_stream(
    path: str | os.PathLike,
    cells_files: Sequence[str | os.PathLike],
    class_names: dict[int, str],
    info: dict,
) -> Path:
    """Write a COCO json from cells files, one frame in memory at a time (atomically).

    Parameters
    ----------
    path : path
        The json to write.
    cells_files : list of path
        The run's cells files, in input order.
    class_names : dict
        Class id -> name (the categories).
    info : dict
        The ``info`` entry (settings of the run...).

    Returns
    -------
    Path
        ``path``.
    """
    import orjson

    from napari_livecell.core.atomic import write_with

    categories = [
        {"supercategory": "cell", "id": class_id + 1, "name": name}
        for class_id, name in sorted(class_names.items())
    ]

    def write(temporary: Path) -> None:
        dump = orjson.OPT_SERIALIZE_NUMPY
        with open(temporary, "wb") as out:
            out.write(b'{"info":' + orjson.dumps(info, option=dump) + b',"licenses":[],"images":[')
            number = 0
            for line in _lines(cells_files):
                if "image" in line:
                    number += 1
                    line["image"]["id"] = number
                    out.write((b"," if number > 1 else b"") + orjson.dumps(line["image"]))
            out.write(b'],"annotations":[')
            annotation_id, number = 0, 0
            for line in _lines(cells_files):
                number += "image" in line
                for annotation in line["annotations"]:
                    annotation_id += 1
                    annotation["id"] = annotation_id
                    annotation["image_id"] = number
                    out.write((b"," if annotation_id > 1 else b"") + orjson.dumps(annotation))
            out.write(b'],"categories":' + orjson.dumps(categories) + b"}")

    return write_with(path, write)
