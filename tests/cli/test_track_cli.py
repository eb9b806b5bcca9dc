"""``napari-livecell track``: a label stack in, tracked stack, CSVs, CTC, ROI set and growth curves out."""

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_livecell.cli import main
from napari_livecell.core.tracking.track import graph_from_lineage, link_accuracy
from napari_livecell.core.training.synthetic import synthesize_timelapse


@pytest.fixture(scope="module")
def lapse():
    return synthesize_timelapse(seed=11, n_frames=5, n_cells=25, shape=(140, 170))


@pytest.fixture(scope="module")
def tracked(lapse, tmp_path_factory):
    folder = tmp_path_factory.mktemp("track")
    stack = folder / "movie.tif"
    tifffile.imwrite(stack, lapse.labels.astype(np.uint16))
    out = folder / "out"
    assert main(["track", str(stack), "--out", str(out), "--ctc", "--roi"]) == 0
    return out


def test_relabelled_stack_follows_the_truth(lapse, tracked):
    labels = tifffile.imread(tracked / "movie_tracked.tif")
    assert labels.shape == lapse.labels.shape and labels.dtype == np.int32
    assert np.array_equal(labels > 0, lapse.labels > 0)
    tracks = pd.read_csv(tracked / "movie_tracks.csv")
    assert list(tracks.columns) == ["frame", "id", "parent", "y", "x", "area"]
    graph = {int(i): [int(p)] for i, p in tracks.drop_duplicates("id")[["id", "parent"]].to_numpy() if p}
    scores = link_accuracy(lapse.track_labels, graph_from_lineage(lapse.lineage), labels, graph)
    assert scores["recall"] >= 0.95


def test_growth_csv_equals_counts_from_the_labels(lapse, tracked):
    growth = pd.read_csv(tracked / "movie_growth.csv")
    counts = [len(np.unique(frame)) - 1 for frame in lapse.labels]
    assert growth["cell_count"].tolist() == counts
    png = (tracked / "movie_growth.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_ctc_roi_features_and_review_written(lapse, tracked):
    from napari_livecell.core.formats.ctc import read_ctc
    from napari_livecell.core.formats.roi import read_roi_zip

    labels = tifffile.imread(tracked / "movie_tracked.tif")
    ctc_labels, lineage = read_ctc(tracked / "movie_ctc")
    assert len(lineage) == labels.max() or len(lineage) >= len(np.unique(labels)) - 1
    assert np.array_equal(ctc_labels > 0, labels > 0)
    rois = read_roi_zip(tracked / "movie_rois.zip", labels.shape)
    assert np.array_equal(rois, labels)
    features = pd.read_csv(tracked / "movie_track_features.csv")
    assert {"track_id", "first_frame", "last_frame", "mean_speed", "divides"} <= set(features.columns)
    review = pd.read_csv(tracked / "movie_review.csv")
    assert list(review.columns) == ["track_id", "kind", "t", "y", "x", "score", "detail"]


def test_a_folder_of_frames_is_tracked_lazily(lapse, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for t, frame in enumerate(lapse.labels):
        tifffile.imwrite(frames / f"f{t:03d}_labels.tif", frame.astype(np.uint16))
    out = tmp_path / "out"
    assert main(["track", str(frames), "--out", str(out), "--no-divisions", "--max-gap", "0"]) == 0
    labels = tifffile.imread(out / "frames_tracked.tif")
    assert labels.shape == lapse.labels.shape
    assert not (out / "frames_ctc").exists() and not (out / "frames_rois.zip").exists()


def test_the_reference_linker_gives_the_same_tracks(lapse, tracked, tmp_path):
    stack = tmp_path / "movie.tif"
    tifffile.imwrite(stack, lapse.labels.astype(np.uint16))
    assert main(["track", str(stack), "--out", str(tmp_path / "out"), "--linker", "laptrack"]) == 0
    reference = tifffile.imread(tmp_path / "out" / "movie_tracked.tif")
    assert np.array_equal(reference, tifffile.imread(tracked / "movie_tracked.tif"))


def test_wrong_inputs_are_one_line_errors(tmp_path, capsys):
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.zeros((20, 20), np.uint16))
    assert main(["track", str(flat), "--out", str(tmp_path / "o")]) == 2
    assert "not a (T, Y, X) label stack" in capsys.readouterr().err
    assert main(["track", str(tmp_path / "missing.tif"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    float_stack = tmp_path / "float.tif"
    tifffile.imwrite(float_stack, np.zeros((2, 8, 8), np.float32))
    assert main(["track", str(float_stack), "--out", str(tmp_path / "o")]) == 2
    assert "not integer labels" in capsys.readouterr().err
