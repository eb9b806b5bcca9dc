"""``segment`` streams a stack: frame by frame in, labels page by page out, resumable, flat in frames.

Real model, real files, real subprocess killed halfway: the streamed TIFF
and COCO json equal today's in-memory result (:func:`predict.segment` and
:func:`build_coco`), a killed run rerun with the same arguments goes on
after its last finished frame and gives the same files, and the memory a
run holds does not grow with its number of frames.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile

from napari_livecell.cli import main

SHAPE = (128, 160)
# torch, in the run and in the in-memory reference: ONNX Runtime's thread pools can change a score's
# 6th digit from one run to the next, and the COCO json is compared value for value
TORCH = ["--device", "cpu", "--runtime", "torch"]


@pytest.fixture(scope="module")
def torch_model():
    from napari_livecell.core.models.model import load_model

    return load_model(device="cpu", runtime="torch")


def _stack(path, n_frames, seed=3, shape=SHAPE):
    from napari_livecell.core.training.synthetic import synthesize_timelapse

    stack = synthesize_timelapse(seed=seed, n_frames=n_frames, n_cells=20, shape=shape).image
    tifffile.imwrite(path, stack, photometric="minisblack", compression="zlib")
    return stack


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    path = tmp_path_factory.mktemp("movie") / "movie.tif"
    _stack(path, 8)
    return path


@pytest.fixture(scope="module")
def whole_run(movie, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    assert main(["segment", str(movie), "--out", str(out), *TORCH]) == 0
    return out


def test_streamed_tiff_and_coco_equal_the_in_memory_result(movie, whole_run, torch_model):
    from napari_livecell.core.formats.coco import CocoImage, build_coco
    from napari_livecell.core.inference.predict import segment
    from napari_livecell.core.segmentation import stack_labels

    frames = segment(tifffile.imread(movie), torch_model)
    labels = tifffile.imread(whole_run / "movie_labels.tif")
    assert labels.shape == (8, *SHAPE) and labels.dtype == np.uint16  # 8 frames x 3000 ids fit
    np.testing.assert_array_equal(labels, stack_labels(frames, (8,)))
    entries = [CocoImage(i + 1, "movie.tif", frame, frame=i) for i, frame in enumerate(frames)]
    expected = build_coco(entries, with_scores=True)
    written = json.loads((whole_run / "predictions.json").read_text())
    assert written["images"] == expected["images"]
    assert written["annotations"] == expected["annotations"]
    assert written["categories"] == expected["categories"]
    # nothing of the run is left beside its results
    assert sorted(p.name for p in whole_run.iterdir()) == [
        "movie_labels.tif",
        "movie_outlines",
        "predictions.json",
    ]


def _records(out):
    return list(out.glob(".segment-progress-*.json"))


def _frames_done(out) -> int:
    for record in _records(out):
        try:
            state = json.loads(record.read_text())["inputs"]["movie"]
        except (ValueError, KeyError, OSError):
            continue  # being replaced this instant
        return state["frames"]
    return 0


def kill_after_frames(argv: list[str], out, frames: int) -> int:
    """Run ``napari-livecell ARGV``, SIGKILL it once ``frames`` frames are recorded; return frames done."""
    run = subprocess.Popen(
        [sys.executable, "-m", "napari_livecell.cli", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        deadline = time.monotonic() + 600
        while _frames_done(out) < frames and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        run.send_signal(signal.SIGKILL)
    finally:
        run.wait()
    return _frames_done(out)


def test_a_killed_run_resumes_after_its_last_frame_with_the_same_results(movie, whole_run, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["segment", str(movie), "--out", str(out), *TORCH]
    done = kill_after_frames(argv, out, 3)
    assert 3 <= done < 8, f"killed after {done} frames"
    assert not (out / "movie_labels.tif").exists() and not (out / "predictions.json").exists()
    kept = {p.name: p.stat().st_mtime_ns for p in sorted((out / "movie_outlines").iterdir())[:done]}

    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "resuming" in err
    # the frames finished before the kill were not segmented again
    assert {name: (out / "movie_outlines" / name).stat().st_mtime_ns for name in kept} == kept
    np.testing.assert_array_equal(
        tifffile.imread(out / "movie_labels.tif"), tifffile.imread(whole_run / "movie_labels.tif")
    )
    ours, theirs = (json.loads((d / "predictions.json").read_text()) for d in (out, whole_run))
    assert ours["images"] == theirs["images"] and ours["annotations"] == theirs["annotations"]
    for png in (whole_run / "movie_outlines").iterdir():
        assert (out / "movie_outlines" / png.name).read_bytes() == png.read_bytes()
    assert not _records(out) and not list(out.glob(".movie.*"))  # progress and partial files gone


def test_other_settings_start_over_instead_of_resuming(movie, tmp_path, capsys):
    """A progress record is only taken up by the same inputs and settings."""
    out = tmp_path / "out"
    assert main(["segment", str(movie), "--out", str(out), "--device", "cpu", "--conf", "0.5"]) == 0
    assert main(["segment", str(movie), "--out", str(out), "--device", "cpu", "--overwrite"]) == 0
    assert "resuming" not in capsys.readouterr().err


def _peak_bytes(path, out) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        assert main(["segment", str(path), "--out", str(out), "--device", "cpu"]) == 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_flat_in_frames(tmp_path, default_model):
    """40 frames peak at about what 10 do: frames are written and let go as they finish."""
    shape = (192, 256)
    _stack(tmp_path / "short.tif", 10, seed=8, shape=shape)
    _stack(tmp_path / "long.tif", 40, seed=8, shape=shape)
    assert (
        main(["segment", str(tmp_path / "short.tif"), "--out", str(tmp_path / "warm"), "--device", "cpu"])
        == 0
    )
    short = _peak_bytes(tmp_path / "short.tif", tmp_path / "a")
    long = _peak_bytes(tmp_path / "long.tif", tmp_path / "b")
    # whole-stack runs held every frame's labels and outlines: 40 frames peaked at ~3x 10
    assert long < 1.3 * short, (short, long)


# frames larger than the network input: band by band -------------------------------------------


def _in_memory(image, model, imgsz, n_frames=None):
    """Today's whole-frame path: labels and COCO of ``predict.segment`` (tiled the same way)."""
    from napari_livecell.core.formats.coco import CocoImage, build_coco
    from napari_livecell.core.inference.predict import PredictSettings, segment
    from napari_livecell.core.segmentation import stack_labels

    frames = segment(image, model, PredictSettings(imgsz=imgsz))
    if n_frames is None:
        labels, entries = frames.labels, [CocoImage(1, "big.tif", frames)]
    else:
        labels = stack_labels(frames, (n_frames,))
        entries = [CocoImage(i + 1, "big.tif", f, frame=i) for i, f in enumerate(frames)]
    return labels, build_coco(entries, with_scores=True)


def _same_as(out, labels, coco):
    written = tifffile.imread(out / "big_labels.tif")
    np.testing.assert_array_equal(written, labels)
    ours = json.loads((out / "predictions.json").read_text())
    assert ours["images"] == coco["images"] and ours["annotations"] == coco["annotations"]


@pytest.fixture(scope="module")
def big_frame(tmp_path_factory):
    from napari_livecell.core.training.synthetic import synthesize_image

    path = tmp_path_factory.mktemp("big") / "big.tif"
    image = synthesize_image(seed=4, n_cells=210, shape=(700, 900)).image
    tifffile.imwrite(path, image)
    return path, image


def test_a_tiled_frame_is_written_with_the_same_cells(big_frame, tmp_path, torch_model):
    path, image = big_frame
    assert main(["segment", str(path), "--out", str(tmp_path), "--imgsz", "256", *TORCH]) == 0
    _same_as(tmp_path, *_in_memory(image, torch_model, 256))
    import imageio.v3 as iio

    assert iio.imread(tmp_path / "big_outlines.png").shape == (700, 900, 3)  # small enough to draw whole


def test_a_tiled_frame_comes_in_bands_never_whole(big_frame, torch_model):
    """Tiles of 256 on 700 rows: 4 tile rows; each band is handed on once no later tile reaches it."""
    from napari_livecell.core.inference.bands import segment_frame_bands
    from napari_livecell.core.inference.predict import PredictSettings
    from napari_livecell.core.inference.recipe import FrameRecipe
    from napari_livecell.core.steps import drain

    _, image = big_frame
    settings = PredictSettings(imgsz=256)
    polarity = FrameRecipe.plan(torch_model, settings).polarity(image)
    bands, cells = [], []
    steps = segment_frame_bands(
        image,
        torch_model,
        settings,
        polarity,
        lambda row0, band: bands.append((row0, band.copy())),
        cells.extend,
    )
    n_cells = drain(steps)
    assert len(bands) >= 3 and all(len(band) < 700 for _, band in bands)
    assert [row0 for row0, _ in bands] == list(np.cumsum([0] + [len(b) for _, b in bands[:-1]]))
    labels = np.concatenate([band for _, band in bands])
    whole, _ = _in_memory(image, torch_model, 256)
    np.testing.assert_array_equal(labels, whole)
    assert [cell[0] for cell in cells] == list(range(1, n_cells + 1)) and n_cells == whole.max()


def test_a_stack_of_tiled_frames_keeps_ids_running_on(tmp_path, torch_model):
    from napari_livecell.core.training.synthetic import synthesize_timelapse

    stack = synthesize_timelapse(seed=6, n_frames=2, n_cells=60, shape=(300, 420)).image
    tifffile.imwrite(tmp_path / "big.tif", stack, photometric="minisblack")
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "big.tif"), "--out", str(out), "--imgsz", "256", *TORCH]) == 0
    _same_as(out, *_in_memory(stack, torch_model, 256, n_frames=2))
    assert sorted(p.name for p in (out / "big_outlines").iterdir()) == ["frame_0000.png", "frame_0001.png"]


def test_an_overview_outlines_a_frame_too_large_to_draw(big_frame, tmp_path, monkeypatch):
    from napari_livecell.core.inference import stream

    monkeypatch.setattr(stream, "OVERVIEW_SIDE", 300)  # a 700 x 900 frame stands in for 20000 x 20000
    path, _ = big_frame
    assert main(["segment", str(path), "--out", str(tmp_path), "--imgsz", "256", *TORCH]) == 0
    import imageio.v3 as iio

    overview = iio.imread(tmp_path / "big_outlines.png")
    assert overview.shape == (234, 300, 3)  # every 3rd row and column
    yellow = (overview[..., 0] == 255) & (overview[..., 1] == 220) & (overview[..., 2] == 0)
    labels = tifffile.imread(tmp_path / "big_labels.tif")[::3, ::3]
    assert yellow[labels > 0].any() and not yellow[labels == 0].any()


def test_scheduler_runs_a_tiled_frame_as_tile_tasks_with_the_same_cells(big_frame, tmp_path, torch_model):
    from distributed import LocalCluster

    path, image = big_frame
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        argv = ["segment", str(path), "--out", str(tmp_path), "--imgsz", "256"]
        assert main([*argv, "--scheduler", cluster.scheduler_address]) == 0
        tasks = cluster.scheduler.task_prefixes  # what ran: the frame's tiles, one task each
        assert "tile_task" in tasks and "segment_frame_task" not in tasks
    _same_as(tmp_path, *_in_memory(image, torch_model, 256))
