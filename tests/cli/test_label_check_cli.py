"""``track`` and ``measure`` refuse an intensity image given as labels: one line, exit code 2."""

import numpy as np
import pytest
import tifffile

from napari_livecell.cli import main
from napari_livecell.core.images import NotLabelsError, check_labels, label_image_problem
from napari_livecell.core.training.synthetic import synthesize_timelapse


@pytest.fixture(scope="module")
def lapse():
    return synthesize_timelapse(seed=2, n_frames=3, n_cells=12, shape=(80, 96))


def fluorescence(shape, seed=0):
    """A raw 16-bit camera movie: offset, shot noise and bright blobs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[-2], : shape[-1]]
    blobs = 800 * np.exp(-((yy - shape[-2] / 2) ** 2 + (xx - shape[-1] / 3) ** 2) / 60.0)
    return (rng.poisson(40 + blobs, shape) + 100).astype(np.uint16)


def test_label_images_pass_and_intensity_images_are_named(lapse):
    assert label_image_problem(lapse.labels) == ""
    assert label_image_problem(np.zeros((3, 20, 20), np.uint16)) == ""  # no cells is still labels
    tiny = np.arange(1, 401).reshape(20, 20).repeat(6, 0).repeat(6, 1)  # 6-px cells edge to edge
    assert label_image_problem(tiny) == ""
    assert "intensity image" in label_image_problem(lapse.image)
    assert "intensity image" in label_image_problem(fluorescence((2, 60, 70)))
    assert "float32" in label_image_problem(lapse.labels.astype(np.float32))
    with pytest.raises(NotLabelsError, match="movie is not a label image.*; do this"):
        check_labels(fluorescence((60, 70)), "movie", "do this")


@pytest.mark.parametrize("command", ["track", "measure"])
def test_an_intensity_movie_is_one_line_and_exit_2(command, tmp_path, capsys):
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, fluorescence((3, 60, 70)), photometric="minisblack")
    out = tmp_path / ("out" if command == "track" else "cells.csv")
    assert main([command, str(movie), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = [line for line in captured.err.splitlines() if line.startswith("napari-livecell")]
    assert len(lines) == 1 and lines[0].startswith("napari-livecell: error: ")
    assert "movie.tif is not a label image: it looks like an intensity image (uint16" in lines[0]
    assert "cells" not in captured.out  # nothing was counted
    assert not out.exists()


def test_a_folder_of_intensity_frames_is_refused_by_track(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for t, frame in enumerate(fluorescence((2, 60, 70))):
        tifffile.imwrite(frames / f"t{t:03d}.tif", frame)
    assert main(["track", str(frames), "--out", str(tmp_path / "out")]) == 2
    assert "t000.tif is not a label image" in capsys.readouterr().err
