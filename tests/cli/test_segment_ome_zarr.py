"""``segment --out-format ome-zarr``: an OME-Zarr (or TIFF) stack in, NGFF labels out, the same cells.

A 3-frame stack is written as OME-Zarr by ome-zarr itself; the labels the
CLI writes are read back by ome-zarr's Reader and compared with the TIFF
path's labels of the same frames.
"""

import sys

import numpy as np
import pandas as pd
import pytest
import tifffile
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
from ome_zarr.writer import write_image

from napari_livecell.cli import main

SHAPE = (160, 192)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from napari_livecell.core.training.synthetic import synthesize_timelapse

    folder = tmp_path_factory.mktemp("zarr_stack")
    frames = synthesize_timelapse(seed=3, n_frames=3, n_cells=25, shape=SHAPE).image
    tifffile.imwrite(folder / "movie.tif", frames, photometric="minisblack")
    axes = [
        {"name": "t", "type": "time"},
        {"name": "c", "type": "channel"},
        {"name": "y", "type": "space"},
        {"name": "x", "type": "space"},
    ]
    write_image(
        frames[:, None],
        str(folder / "movie.ome.zarr"),
        axes=axes,
        scale={"t": 1.0, "c": 1.0, "y": 0.5, "x": 0.5},
        axes_units={"y": "micrometer", "x": "micrometer"},
    )
    return folder


@pytest.fixture(scope="module")
def runs(stack, tmp_path_factory):
    tiff_out = tmp_path_factory.mktemp("tiff_out")
    zarr_out = tmp_path_factory.mktemp("zarr_out")
    tiff_run = ["segment", str(stack / "movie.tif"), "--out", str(tiff_out), "--pixel-size", "0.5"]
    assert main([*tiff_run, "--device", "cpu"]) == 0
    # the OME-Zarr's own metadata gives 0.5 um per pixel
    zarr_run = ["segment", str(stack / "movie.ome.zarr"), "--out", str(zarr_out), "--out-format", "ome-zarr"]
    assert main([*zarr_run, "--device", "cpu"]) == 0
    return tiff_out, zarr_out


def test_ome_zarr_labels_equal_the_tiff_labels(runs):
    tiff_out, zarr_out = runs
    expected = tifffile.imread(tiff_out / "movie_labels.tif")
    nodes = list(Reader(parse_url(str(zarr_out / "movie.ome.zarr" / "labels")))())
    cells = next(node for node in nodes if node.metadata.get("name") == "cells")
    labels = np.asarray(cells.data[0])
    assert labels.dtype.kind == "u" and expected.max() > 0  # ids in the dtype decided up front
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(np.asarray(cells.data[1]), expected[:, ::2, ::2])
    assert [axis["name"] for axis in cells.metadata["axes"]] == ["t", "y", "x"]
    assert cells.metadata["coordinateTransformations"][0][0]["scale"] == [1.0, 0.5, 0.5]
    from napari_livecell.core.formats.ome_zarr import read_labels

    assert read_labels(zarr_out / "movie.ome.zarr").units == {"y": "micrometer", "x": "micrometer"}


def test_ome_zarr_run_writes_the_store_instead_of_the_tiff(runs):
    _, zarr_out = runs
    assert sorted(p.name for p in zarr_out.iterdir()) == [
        "movie.ome.zarr",
        "movie_outlines",
        "predictions.json",
    ]


def test_broken_ome_zarr_input_is_one_line(stack, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken.ome.zarr"
    shutil.copytree(stack / "movie.ome.zarr", broken)
    shutil.rmtree(broken / "s0")
    assert main(["segment", str(broken), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "napari-livecell: error: broken.ome.zarr: broken.ome.zarr: dataset 's0' named by the multiscales "
        "metadata is missing"
    )


def test_measure_and_track_read_the_ome_zarr_labels(stack, runs, tmp_path):
    tiff_out, zarr_out = runs
    store = zarr_out / "movie.ome.zarr"
    images = ["--images", str(stack / "movie.ome.zarr"), "--pixel-size", "0.5"]
    assert main(["measure", str(store), *images, "--out", str(tmp_path / "zarr.csv")]) == 0
    tiff_labels = str(tiff_out / "movie_labels.tif")
    assert main(["measure", tiff_labels, "--images", str(stack / "movie.tif"), "--pixel-size", "0.5",
                 "--out", str(tmp_path / "tiff.csv")]) == 0  # fmt: skip
    from_zarr, from_tiff = pd.read_csv(tmp_path / "zarr.csv"), pd.read_csv(tmp_path / "tiff.csv")
    assert len(from_zarr) > 20 and from_zarr["mean_intensity"].notna().all()
    pd.testing.assert_frame_equal(from_zarr.drop(columns="image"), from_tiff.drop(columns="image"))
    assert main(["track", str(store), "--out", str(tmp_path / "tracks_zarr")]) == 0
    assert main(["track", tiff_labels, "--out", str(tmp_path / "tracks_tiff")]) == 0
    from_zarr = pd.read_csv(tmp_path / "tracks_zarr" / "movie_tracks.csv")
    from_tiff = pd.read_csv(tmp_path / "tracks_tiff" / "movie_labels_tracks.csv")
    pd.testing.assert_frame_equal(from_zarr, from_tiff)


def test_labels_never_overwrite_the_ome_zarr_input(stack, capsys):
    store = stack / "movie.ome.zarr"
    assert main(["segment", str(store), "--out", str(stack), "--out-format", "ome-zarr"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"napari-livecell: error: the results of movie.ome.zarr would overwrite the input {store.resolve()}: "
        "choose another --out"
    )


def test_a_tiled_frame_goes_into_ome_zarr_band_by_band_with_the_same_cells(tmp_path):
    from napari_livecell.core.formats.ome_zarr import read_labels
    from napari_livecell.core.training.synthetic import synthesize_image

    path = tmp_path / "big.tif"
    tifffile.imwrite(path, synthesize_image(seed=4, n_cells=210, shape=(700, 900)).image)
    tiled = ["segment", str(path), "--imgsz", "256", "--device", "cpu"]
    assert main([*tiled, "--out", str(tmp_path / "tiff")]) == 0
    assert main([*tiled, "--out", str(tmp_path / "zarr"), "--out-format", "ome-zarr"]) == 0
    expected = tifffile.imread(tmp_path / "tiff" / "big_labels.tif")
    stored = read_labels(tmp_path / "zarr" / "big.ome.zarr")
    assert expected.max() > 100 and len(stored.pyramid) == 3
    np.testing.assert_array_equal(stored.data.compute(), expected)
    np.testing.assert_array_equal(stored.pyramid[2].compute(), expected[::4, ::4])


def test_a_killed_ome_zarr_run_resumes_with_the_same_labels(tmp_path, capsys):

    from tests.cli.test_segment_streaming import _records, kill_after_frames

    longer = tmp_path / "movie.tif"
    from napari_livecell.core.training.synthetic import synthesize_timelapse

    frames = synthesize_timelapse(seed=3, n_frames=8, n_cells=20, shape=(128, 160)).image
    tifffile.imwrite(longer, frames, photometric="minisblack")
    whole = tmp_path / "whole"
    argv = ["segment", str(longer), "--out-format", "ome-zarr", "--device", "cpu"]
    assert main([*argv, "--out", str(whole)]) == 0
    out = tmp_path / "out"
    done = kill_after_frames([*argv, "--out", str(out)], out, 3)
    assert 3 <= done < 8, f"killed after {done} frames"
    assert not (out / "movie.ome.zarr").exists() and (out / ".movie.ome.zarr.partial").is_dir()
    assert main([*argv, "--out", str(out)]) == 0
    assert "resuming" in capsys.readouterr().err
    from napari_livecell.core.formats.ome_zarr import read_labels

    ours, theirs = read_labels(out / "movie.ome.zarr"), read_labels(whole / "movie.ome.zarr")
    for mine, reference in zip(ours.pyramid, theirs.pyramid):
        np.testing.assert_array_equal(mine.compute(), reference.compute())
    assert not _records(out) and not list(out.glob(".movie.*"))  # progress and partial files gone


def test_without_the_ome_zarr_extra_the_run_is_refused_before_any_work(stack, tmp_path, monkeypatch, capsys):
    # the base install lacks ome-zarr (its S3 client is too big for it): one line, before a frame is segmented
    for name in [name for name in sys.modules if name == "ome_zarr" or name.startswith("ome_zarr.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ome_zarr", None)
    run = ["segment", str(stack / "movie.ome.zarr"), "--out", str(tmp_path), "--out-format", "ome-zarr"]
    assert main([*run, "--device", "cpu"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "napari-livecell[ome-zarr]" in error
    assert list(tmp_path.iterdir()) == []
