"""CLI stacks write what the GUI shows: ids running on across frames, per-frame outline PNGs.

The local run and ``--scheduler`` (a real distributed.LocalCluster) write the
same files; a 2-channel TIFF is segmented on the channel asked for.
"""

import json

import numpy as np
import pytest
import tifffile

from napari_livecell.cli import main

SHAPE = (160, 192)


@pytest.fixture(scope="module")
def stack_file(tmp_path_factory):
    from napari_livecell.core.training.synthetic import synthesize_timelapse

    folder = tmp_path_factory.mktemp("stack")
    path = folder / "movie.tif"
    stack = synthesize_timelapse(seed=3, n_frames=3, n_cells=25, shape=SHAPE).image
    tifffile.imwrite(path, stack, photometric="minisblack")
    return path


@pytest.fixture(scope="module")
def local_run(stack_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    # torch, as the cluster's workers run it: another runtime gives the same cells, but a score
    # can differ in its 6th digit and the json is compared byte for byte below
    assert main(["segment", str(stack_file), "--out", str(out), "--device", "cpu", "--runtime", "torch"]) == 0
    return out


def test_stack_ids_run_on_like_the_gui(stack_file, local_run, default_model):
    from napari_livecell.core.inference.predict import segment
    from napari_livecell.layers import result_layer_data

    labels = tifffile.imread(local_run / "movie_labels.tif")
    gui = result_layer_data(segment(tifffile.imread(stack_file), default_model), "movie", (3,))
    np.testing.assert_array_equal(labels, gui[0][0])
    ids = [set(np.unique(frame)) - {0} for frame in labels]
    assert all(ids) and not (ids[0] & ids[1]) and not (ids[1] & ids[2])  # no id reused in another frame


def test_stack_outlines_are_one_png_per_frame(local_run):
    import imageio.v3 as iio

    folder = local_run / "movie_outlines"
    assert sorted(p.name for p in folder.iterdir()) == ["frame_0000.png", "frame_0001.png", "frame_0002.png"]
    labels = tifffile.imread(local_run / "movie_labels.tif")
    for number, png in enumerate(sorted(folder.iterdir())):
        outlined = iio.imread(png)
        assert outlined.shape == (*SHAPE, 3)
        yellow = (outlined[..., 0] == 255) & (outlined[..., 1] == 220) & (outlined[..., 2] == 0)
        assert yellow[labels[number] > 0].any() and not yellow[labels[number] == 0].any()
    assert not (local_run / "movie_outlines.tif").exists()
    frames = json.loads((local_run / "predictions.json").read_text())["images"]
    assert [f["frame"] for f in frames] == [0, 1, 2]


def test_scheduler_writes_the_same_files(stack_file, local_run, tmp_path):
    from distributed import LocalCluster

    out = tmp_path / "cluster"
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        assert (
            main(["segment", str(stack_file), "--out", str(out), "--scheduler", cluster.scheduler_address])
            == 0
        )
    local_files = sorted(p.relative_to(local_run).as_posix() for p in local_run.rglob("*"))
    cluster_files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert cluster_files == local_files  # the per-frame scratch folder is gone
    np.testing.assert_array_equal(
        tifffile.imread(out / "movie_labels.tif"), tifffile.imread(local_run / "movie_labels.tif")
    )
    for png in (local_run / "movie_outlines").iterdir():
        assert (out / "movie_outlines" / png.name).read_bytes() == png.read_bytes()
    ours, theirs = (json.loads((d / "predictions.json").read_text()) for d in (local_run, out))
    assert ours["images"] == theirs["images"] and ours["annotations"] == theirs["annotations"]


def test_channel_of_a_two_channel_tiff(tmp_path, small_frame, capsys):
    path = tmp_path / "two.tif"
    blank = np.zeros_like(small_frame.image)
    tifffile.imwrite(path, np.stack([blank, small_frame.image]), photometric="minisblack")
    for channel, expect_cells in ((1, True), (0, False)):
        out = tmp_path / f"c{channel}"
        assert (
            main(["segment", str(path), "--out", str(out), "--device", "cpu", "--channel", str(channel)]) == 0
        )
        labels = tifffile.imread(out / "two_labels.tif")
        assert labels.shape == small_frame.image.shape  # one frame, not a 2-frame stack
        assert (labels.max() > 20) == expect_cells
    assert main(["segment", str(path), "--out", str(tmp_path / "bad"), "--channel", "2"]) == 1
    assert "channel 2 does not exist" in capsys.readouterr().err


def test_modality_and_label_warnings_on_stderr(tmp_path, small_frame, capsys):
    from napari_livecell.core.training.synthetic import synthesize_image

    fluorescence = synthesize_image(21, n_cells=40, shape=(128, 160), look="fluorescence")
    tifffile.imwrite(tmp_path / "nuclei.tif", fluorescence.image)
    tifffile.imwrite(tmp_path / "masks.tif", fluorescence.labels.astype(np.uint16))
    assert (
        main(
            [
                "segment",
                str(tmp_path / "nuclei.tif"),
                str(tmp_path / "masks.tif"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "nuclei.tif: " in err and "fluorescence (auto): inverted for a phase model" in err
    assert "masks.tif looks like a label image" in err
    assert "nuclei.tif looks like" not in err
    settings = json.loads((tmp_path / "o" / "predictions.json").read_text())["info"]["settings"]
    assert settings["modality"] == "auto"
