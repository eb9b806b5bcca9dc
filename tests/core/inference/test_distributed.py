"""Segmenting a stack on a real distributed.LocalCluster (2 worker processes on 127.0.0.1)."""

import json
import os

import numpy as np
import pytest
import tifffile

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as local,
        Client(local) as client,
    ):
        yield local, client


@pytest.fixture(scope="module")
def stack():
    from napari_livecell.core.training.synthetic import synthesize_timelapse

    return synthesize_timelapse(seed=12, n_frames=12, n_cells=40, shape=(192, 256)).image


def cluster_frames(stack, scheduler: str, **kwargs) -> list:
    from napari_livecell.core.inference.run import Backend, FrameResult, iter_segment

    events = iter_segment(stack, Backend(scheduler=scheduler), **kwargs)
    return [event for event in events if isinstance(event, FrameResult)]


def test_same_results_as_local_survives_a_killed_worker_and_resumes(tmp_path, cluster, stack, default_model):
    from napari_livecell.core.inference.predict import segment
    from napari_livecell.core.inference.run import Backend, FrameResult, iter_segment

    local_cluster, client = cluster
    scratch = tmp_path / "scratch"
    killed = []
    found = []
    for event in iter_segment(stack, Backend(scheduler=local_cluster.scheduler_address), scratch=scratch):
        if not isinstance(event, FrameResult):
            continue
        found.append(event.segmentation)
        if not killed:  # one worker dies after the first frame: its tasks run again on the other
            victim = sorted(client.scheduler_info()["workers"])[0]
            killed.append(victim)
            try:
                client.run(os._exit, 1, workers=[victim], wait=False)
            except Exception:
                pass
    assert killed
    reference = segment(stack, default_model)
    assert len(found) == 12
    for index, expected in enumerate(reference):
        assert np.array_equal(found[index].labels, expected.labels)
        assert np.array_equal(tifffile.imread(scratch / f"frame_{index:05d}_labels.tif"), expected.labels)

    # as if the run had crashed before frame 3 was written: only that frame is computed again
    (scratch / "frame_00003.json").unlink()
    written = {path.name: path.stat().st_mtime_ns for path in scratch.iterdir()}
    again = cluster_frames(stack, local_cluster.scheduler_address, scratch=scratch)
    rewritten = {path.name for path in scratch.iterdir() if path.stat().st_mtime_ns != written.get(path.name)}
    assert rewritten == {"frame_00003.json", "frame_00003_labels.tif"}
    for frame, expected in zip(again, reference, strict=True):
        assert np.array_equal(frame.segmentation.labels, expected.labels)
        assert np.allclose(frame.segmentation.scores, expected.scores, atol=1e-6)


def test_cli_segment_with_a_scheduler(tmp_path, cluster, stack):
    from napari_livecell.cli import main

    _, client = cluster
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, stack[:4], photometric="minisblack")
    command = ["segment", str(path), "--out", str(tmp_path / "out"), "--scheduler", client.scheduler.address]
    assert main([*command, "--threads", "2"]) == 0
    # the files of a local run (tests/cli/test_segment_stacks.py compares them), not a folder per stack
    coco = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [image["frame"] for image in coco["images"]] == [0, 1, 2, 3]
    assert (tmp_path / "out" / "movie_labels.tif").exists() and not (
        tmp_path / "out" / ".movie_frames"
    ).exists()
    assert len(coco["annotations"]) > 20

    def torch_threads():
        import torch

        return torch.get_num_threads()

    # each worker ran its frame tasks with the thread count asked for
    # (Dask starts worker processes with OMP_NUM_THREADS=1, so torch would use 1)
    assert set(client.run(torch_threads).values()) == {2}


def test_frames_on_the_cluster_are_resampled_by_pixel_size_as_locally(tmp_path, cluster, stack):
    from napari_livecell.core.inference.run import Backend, FrameResult, iter_segment
    from napari_livecell.core.models.model import DEFAULT_MODEL_PIXEL_SIZE_UM

    local_cluster, _ = cluster
    coarse = 2 * DEFAULT_MODEL_PIXEL_SIZE_UM
    frames = stack[:2, ::2, ::2]  # cells half as large as the model's, at twice its pixel size
    local = [
        e
        for e in iter_segment(frames, Backend(device="cpu"), pixel_size=coarse)
        if isinstance(e, FrameResult)
    ]
    on_cluster = iter_segment(frames, Backend(scheduler=local_cluster.scheduler_address), pixel_size=coarse)
    remote = [e for e in on_cluster if isinstance(e, FrameResult)]
    for here, there in zip(local, remote, strict=True):
        assert there.resampling == here.resampling and there.resampling.applied
        assert np.array_equal(there.segmentation.labels, here.segmentation.labels)
        assert there.segmentation.labels.shape == frames.shape[1:]

    # read back from a scratch folder, a frame keeps what was decided about its pixel size
    cluster_frames(frames, local_cluster.scheduler_address, pixel_size=coarse, scratch=tmp_path)
    kept = cluster_frames(
        frames, local_cluster.scheduler_address, pixel_size=coarse, pixel_size_source="x", scratch=tmp_path
    )
    resampling = kept[0].resampling
    assert resampling.describe() == f"resampled {coarse:g} -> {DEFAULT_MODEL_PIXEL_SIZE_UM:g} um/px"
    assert resampling.source == "" and resampling == local[0].resampling
    assert np.array_equal(kept[0].segmentation.labels, local[0].segmentation.labels)


def test_widget_segments_a_lazy_stack_on_the_cluster(
    qtbot, make_napari_viewer, cluster, stack, default_model
):
    import dask.array as da

    from napari_livecell.core.inference.predict import segment_frame

    local_cluster, _ = cluster
    viewer = make_napari_viewer()
    viewer.add_image(da.from_array(stack[:5], chunks=(1, -1, -1)), name="lazy")
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    widget._scheduler.value = local_cluster.scheduler_address
    from napari_livecell._qt.segment_worker import FrameReady

    ready = []  # (frame, whether it is in the layer's data) at each finished frame, during the run
    widget_saw = widget._on_progress

    def look(progress):
        widget_saw(progress)  # seen with the widget's own slot, connected before the worker starts
        if isinstance(progress, FrameReady):
            ready.append((progress.index[0], bool(viewer.layers["lazy cells"].data[progress.index].any())))

    widget._on_progress = look
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=120_000)

    cells = viewer.layers["lazy cells"]
    assert ready == [(t, True) for t in range(5)], "the layer filled in frame by frame, in order"
    assert len(viewer.layers["lazy outlines"].data) >= len(cells.features)
    first_id = 0
    for frame, labels in zip(stack[:5], cells.data):
        reference = segment_frame(frame, default_model)
        assert len(np.unique(labels)) - 1 == reference.n_cells
        assert labels.max() == first_id + reference.n_cells, "ids run on in frame order"
        found, expected = labels > 0, reference.labels > 0
        overlap = (found & expected).sum() / (found | expected).sum()
        assert overlap > 0.99
        first_id += reference.n_cells


def test_widget_reports_an_unreachable_scheduler(qtbot, make_napari_viewer, stack):
    viewer = make_napari_viewer()
    viewer.add_image(stack[:2], name="movie")
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    widget._scheduler.value = "tcp://127.0.0.1:9"  # nothing listens on the discard port
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in widget._status.value
    assert [layer.name for layer in viewer.layers] == ["movie"]
