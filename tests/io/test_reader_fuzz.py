"""Every reader fed random bytes and random small structures: layers, None, or one line of its own error.

The readers run in a subprocess whose address space may grow by at most
1 GiB past what the imports took (``RLIMIT_AS``): a reader that sizes its
output from a number in the file, instead of refusing it, dies there with a
MemoryError. The label limit is set to 0.25 GiB in that process so that
what the readers may allocate lies within the cap.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MEMORY_CAP = 2**30
EXAMPLES = int(os.environ.get("READER_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def _allowed() -> tuple[type[BaseException], ...]:
    from napari_livecell.core.formats.coco import CocoFormatError
    from napari_livecell.core.formats.ctc import CtcFormatError
    from napari_livecell.core.formats.roi import RoiFormatError
    from napari_livecell.core.formats.yolo import YoloFormatError
    from napari_livecell.core.limits import LimitError
    from napari_livecell.core.training.review import ReviewError

    return CocoFormatError, CtcFormatError, RoiFormatError, YoloFormatError, LimitError, ReviewError


def _opens(get_reader, path) -> None:
    """The npe2 way: a reader or None; the reader gives layers or one line of the project's errors."""
    try:
        reader = get_reader(str(path))
        if reader is None:
            return
        layers = reader(str(path))
    except _allowed() as error:
        message = str(error)
        assert message and "\n" not in message, repr(message)
        return
    assert isinstance(layers, list) and all(len(layer) in (2, 3) for layer in layers)


# --- strategies ----------------------------------------------------------------------------------

numbers = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 8, 60_000, 2**31, 2**40, 1e9, -1, -0.5]),
)
small = st.integers(-3, 40)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def coco_documents(draw) -> dict:
    size = st.one_of(small, st.sampled_from([16, 2**40, 100_000, "16", None]))
    images = draw(
        st.lists(
            st.fixed_dictionaries(
                {"id": st.one_of(small, st.just(2**40)), "width": size, "height": size},
                optional={"file_name": st.text(max_size=6), "frame": small},
            ),
            max_size=3,
        )
    )
    ring = st.lists(numbers, max_size=10)
    segmentation = st.one_of(
        st.lists(ring, max_size=2),
        st.fixed_dictionaries({"size": st.lists(small, max_size=3), "counts": st.text(max_size=10) | ring}),
        json_values,
    )
    annotation = st.fixed_dictionaries(
        {"image_id": st.one_of(small, st.just(2**40)), "segmentation": segmentation},
        optional={
            "id": small,
            "label": numbers | st.booleans(),
            "category_id": numbers,
            "score": numbers | st.none(),
            "area": numbers,
            "baseline_label": numbers,
        },
    )
    coco = {"images": images, "annotations": draw(st.lists(annotation, max_size=4))}
    if draw(st.booleans()):
        coco["categories"] = draw(
            st.lists(st.fixed_dictionaries({"id": numbers, "name": json_values}), max_size=2)
        )
    if draw(st.booleans()):
        coco["napari_livecell"] = draw(
            st.fixed_dictionaries({"baseline_annotations": st.lists(json_values | annotation, max_size=2)})
        )
    return coco


def _write_png(path: Path, size=(16, 16)) -> None:
    import imageio.v3 as iio

    iio.imwrite(path, np.full(size, 100, np.uint8))


def _roi_bytes(draw) -> list:
    import roifile

    rois = []
    for _ in range(draw(st.integers(1, 3))):
        points = draw(
            st.lists(st.tuples(numbers, numbers), min_size=1, max_size=6).map(
                lambda pairs: np.asarray(pairs, dtype=np.float64)
            )
        )
        points = np.nan_to_num(points, nan=0.0, posinf=3e38, neginf=-3e38).clip(-3e38, 3e38)
        name = draw(st.one_of(st.text(max_size=12), st.from_regex(r"\A(\d{1,12}-)?\d{1,12}\Z")))
        t = draw(st.one_of(st.none(), st.integers(0, 2**31 - 1)))
        try:
            rois.append(roifile.ImagejRoi.frompoints(points.astype(np.float32), name=name, position=t, t=t))
        except (ValueError, OverflowError, TypeError):
            continue  # roifile itself refuses to write it
    return rois


# --- the fuzzers (plain functions: the subprocess calls them) ----------------------------------


@FUZZ
@given(content=st.binary(max_size=400), kind=st.sampled_from(["json", "txt", "zip", "roi"]))
def fuzz_random_bytes(content: bytes, kind: str) -> None:
    from napari_livecell.io.read import get_coco_reader, get_yolo_reader
    from napari_livecell.io.read_tracks import get_roi_reader

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"cells.{kind}"
        path.write_bytes(b"Iout" + content if kind == "roi" else content)
        _write_png(Path(folder) / "cells.png")
        for get_reader in (get_coco_reader, get_yolo_reader, get_roi_reader):
            _opens(get_reader, path)


@FUZZ
@given(coco=coco_documents())
def fuzz_coco(coco: dict) -> None:
    from napari_livecell.io.read import get_coco_reader

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cells.json"
        path.write_text(json.dumps(coco, allow_nan=True))
        _opens(get_coco_reader, path)


@FUZZ
@given(
    lines=st.lists(st.lists(numbers, max_size=12), min_size=1, max_size=4),
    names=st.one_of(st.none(), json_values),
)
def fuzz_yolo(lines: list, names) -> None:
    from napari_livecell.io.read import get_yolo_reader

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cells.txt"
        path.write_text("\n".join(" ".join(str(v) for v in line) for line in lines))
        _write_png(Path(folder) / "cells.png")
        if names is not None:
            (Path(folder) / "data.yaml").write_text(json.dumps({"names": names}))
        _opens(get_yolo_reader, path)


@FUZZ
@given(data=st.data())
def fuzz_roi_sets(data) -> None:
    import roifile

    from napari_livecell.io.read_tracks import get_roi_reader

    rois = _roi_bytes(data.draw)
    if not rois:
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rois.zip"
        try:
            roifile.roiwrite(path, rois)
        except (struct.error, ValueError, OverflowError):
            return  # roifile cannot write it: not a file anyone has
        _opens(get_roi_reader, path)


@FUZZ
@given(
    rows=st.lists(st.lists(numbers, min_size=3, max_size=5), max_size=4),
    masks=st.lists(
        st.tuples(
            st.sampled_from(["uint8", "uint16", "int16", "uint32", "int64", "float32"]),
            st.sampled_from([(4, 4), (4, 5), (1, 4, 4), (2, 3)]),
            st.lists(st.sampled_from([0, 1, 2, 7, 255, 65535, 5 * 10**8, 4 * 10**9, 2**40, -1]), max_size=3),
        ),
        min_size=1,
        max_size=3,
    ),
    damaged=st.booleans(),
    name=st.sampled_from(["mask{t:03d}.tif", "mask.tif", "mask_{t}_x.tif"]),
)
def fuzz_ctc(rows, masks, damaged, name) -> None:
    import tifffile

    from napari_livecell.io.read_tracks import get_ctc_reader

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "res_track.txt").write_text("\n".join(" ".join(str(v) for v in row) for row in rows))
        for t, (dtype, shape, ids) in enumerate(masks):
            info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
            values = [v for v in ids if info is None or info.min <= v <= info.max] or [0]
            frame = np.resize(np.asarray(values, dtype=dtype), shape)
            target = folder / name.format(t=t)
            if damaged and t == len(masks) - 1:
                target.write_bytes(b"II*\x00" + bytes(20))
            else:
                tifffile.imwrite(target, frame)
        _opens(get_ctc_reader, folder)


@FUZZ
@given(
    index=st.one_of(json_values, st.fixed_dictionaries({"images": json_values, "categories": json_values}))
)
def fuzz_review_index(index) -> None:
    from napari_livecell.core.training.review import ReviewError, ReviewIndex

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "dataset.json").write_text(json.dumps(index, allow_nan=True))
        try:
            ReviewIndex.load(folder)
        except ReviewError as error:
            assert str(error) and "\n" not in str(error)


FUZZERS = [fuzz_random_bytes, fuzz_coco, fuzz_yolo, fuzz_roi_sets, fuzz_ctc, fuzz_review_index]


def run(names: list[str]) -> None:
    """In the subprocess: import the readers, cap the address space, run the fuzzers."""
    import resource

    import dask
    import roifile  # noqa: F401
    import tifffile  # noqa: F401

    import napari_livecell.io.read
    import napari_livecell.io.read_tracks  # noqa: F401

    dask.config.set(scheduler="synchronous")  # no worker threads reserving stacks under the cap
    _allowed()
    for status in Path("/proc/self/status").read_text().splitlines():
        if status.startswith("VmSize:"):
            used = int(status.split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (used + MEMORY_CAP, used + MEMORY_CAP))
    for fuzzer in FUZZERS:
        if fuzzer.__name__ in names:
            fuzzer()
    print("fuzzed", ", ".join(names))


@pytest.mark.parametrize("fuzzer", [f.__name__ for f in FUZZERS])
def test_readers_survive_random_input_within_1_gib(fuzzer):
    env = {**os.environ, "NAPARI_LIVECELL_MAX_LABEL_GIB": "0.25", "OMP_NUM_THREADS": "1"}
    env["OPENBLAS_NUM_THREADS"] = "1"
    root = Path(__file__).resolve().parents[2]
    code = f"import tests.io.test_reader_fuzz as m; m.run([{fuzzer!r}])"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-6000:]
    assert "fuzzed" in result.stdout


def test_a_zip_that_unpacks_to_gigabytes_is_refused_unread(tmp_path):
    """Member sizes come from the zip's directory: a 1 GiB .roi member is refused before it is read."""
    from napari_livecell.core.formats.roi import RoiFormatError
    from napari_livecell.io.read_tracks import read_roi_layers

    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("a.roi", "w", force_zip64=True) as member:
            chunk = b"\0" * 2**20
            for _ in range(300):
                member.write(chunk)
    assert path.stat().st_size < 2 * 2**20
    with pytest.raises(RoiFormatError, match="unpacks to 300 MiB"):
        read_roi_layers(str(path))
