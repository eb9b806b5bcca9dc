"""Where the CLI writes: unwritable --out, clashing output names, outputs never read back, progress.

Issue 15, items 9, 10 and 12. Every refusal is one line on stderr, exit code 2, and happens
before any model runs or any output is written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_livecell.cli import main

RUNNING_AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def one_line_error(capsys) -> str:
    """The single ``napari-livecell: error:`` line a refused command printed."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("napari-livecell: error: ")
    return lines[0]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """One small synthetic image with its COCO json (and a label TIFF folder)."""
    root = tmp_path_factory.mktemp("dataset")
    assert main(["synth", "--out", str(root), "--n", "1", "--seed", "3", "--cells", "20"]) == 0
    return root


def command_lines(dataset, out: str) -> dict[str, list[str]]:
    """Each subcommand that writes to --out, with ``out`` as its output."""
    images = str(dataset / "images")
    gt = str(dataset / "annotations.json")
    return {
        "segment": ["segment", images, "--device", "cpu", "--out", out],
        "convert-tif": ["convert", gt, out, "--to", "tif"],
        "convert-yolo": ["convert", gt, out, "--to", "yolo", "--images", images],
        "curate": ["curate", "--gt", gt, "--images", images, "--out", out],
        "train": ["train", "--data", gt, "--images", images, "--epochs", "1", "--out", out],
        "synth": ["synth", "--n", "1", "--out", out],
        "export": ["export", "default", "--out", out],
    }


COMMANDS = ("segment", "convert-tif", "convert-yolo", "curate", "train", "synth", "export")


# --- item 9: unwritable --out -------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_out_that_is_an_existing_file_is_one_line(dataset, tmp_path, capsys, command):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    assert main(command_lines(dataset, str(target))[command]) == 2
    line = one_line_error(capsys)
    assert str(target) in line and "is a file" in line
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.txt"]


@pytest.mark.parametrize("command", COMMANDS)
def test_out_below_a_file_is_one_line(dataset, tmp_path, capsys, command):
    """A path under a regular file cannot be created, even by root."""
    (tmp_path / "file.txt").write_text("x")
    target = tmp_path / "file.txt" / "out"
    assert main(command_lines(dataset, str(target))[command]) == 2
    line = one_line_error(capsys)
    assert "cannot create output folder" in line and str(tmp_path / "file.txt") in line
    assert "is a file" in line


@pytest.mark.skipif(RUNNING_AS_ROOT, reason="root writes into 0o555 folders: chmod cannot make one read-only")
@pytest.mark.parametrize("command", COMMANDS)
def test_read_only_out_folder_is_one_line(dataset, tmp_path, capsys, command):
    target = tmp_path / "locked"
    target.mkdir()
    target.chmod(0o555)
    try:
        assert main(command_lines(dataset, str(target))[command]) == 2
        line = one_line_error(capsys)
        assert f"cannot write to output folder {target}" in line
        assert list(target.iterdir()) == []
    finally:
        target.chmod(0o755)


@pytest.mark.skipif(RUNNING_AS_ROOT, reason="root writes into 0o555 folders: chmod cannot make one read-only")
def test_out_inside_a_read_only_folder_is_one_line(dataset, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(command_lines(dataset, str(locked / "new"))["segment"]) == 2
        assert f"cannot create output folder {locked / 'new'}" in one_line_error(capsys)
    finally:
        locked.chmod(0o755)


IN_MOUNT_NAMESPACE = """
import contextlib, io, json, sys
from napari_livecell.cli import main
results = {}
for name, argv in json.loads(sys.argv[1]).items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        results[name] = [main(argv), err.getvalue()]
print(json.dumps(results))
"""


def test_read_only_mount_is_one_line_for_every_command(dataset, tmp_path):
    """A real read-only file system (EROFS stops root too), mounted in a private mount namespace."""
    if not RUNNING_AS_ROOT or shutil.which("unshare") is None:
        pytest.skip("mounting a read-only file system needs root and unshare(1)")
    mount = tmp_path / "readonly"
    mount.mkdir()
    cases = {}
    for command, argv in command_lines(dataset, str(mount)).items():
        cases[f"{command}:mount"] = argv
    for command, argv in command_lines(dataset, str(mount / "new")).items():
        cases[f"{command}:inside"] = argv
    shell = 'mount -t tmpfs -o ro,size=1m tmpfs "$0" || exit 99; exec "$@"'
    program = [sys.executable, "-c", IN_MOUNT_NAMESPACE, json.dumps(cases)]
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", shell, str(mount), *program], capture_output=True, text=True
    )
    if result.returncode == 99 or (result.returncode != 0 and "unshare" in result.stderr):
        pytest.skip(f"cannot mount a read-only file system here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr[-3000:]
    for case, (code, err) in json.loads(result.stdout.strip().splitlines()[-1]).items():
        assert code == 2, (case, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, (case, err)
        if case.endswith(":mount"):
            assert f"cannot write to output folder {mount}: Read-only file system" in lines[0], case
        else:
            assert f"cannot create output folder {mount / 'new'}: Read-only file system" in lines[0], case
    assert list(mount.iterdir()) == []


def test_convert_to_coco_refuses_a_folder_as_json_and_a_json_below_a_file(tmp_path, capsys, dataset):
    labels = dataset / "labels"
    folder = tmp_path / "folder.json"
    folder.mkdir()
    assert main(["convert", str(labels), str(folder), "--to", "coco"]) == 2
    assert f"{folder} is a folder" in one_line_error(capsys)
    (tmp_path / "file.txt").write_text("x")
    below = tmp_path / "file.txt" / "out.json"
    assert main(["convert", str(labels), str(below), "--to", "coco"]) == 2
    assert f"{tmp_path / 'file.txt'} is a file, not a folder" in one_line_error(capsys)


def test_export_onnx_below_a_file_and_triton_into_a_file(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    assert main(["export", "default", "--out", str(tmp_path / "file.txt" / "m.onnx")]) == 2
    assert f"{tmp_path / 'file.txt'} is a file, not a folder" in one_line_error(capsys)
    assert (
        main(["export", "default", "--out", str(tmp_path / "m.onnx"), "--triton", str(tmp_path / "file.txt")])
        == 2
    )
    assert "is a file" in one_line_error(capsys)
    assert not (tmp_path / "m.onnx").exists()


def test_os_errors_are_one_line_without_traceback(capsys, monkeypatch):
    """Any OSError a subcommand lets escape is a last-resort one-liner naming the file."""
    from napari_livecell.cli import synth

    def fail(args):
        raise IsADirectoryError(21, "Is a directory", "/somewhere/x.json")

    monkeypatch.setattr(synth, "run", fail)
    assert main(["synth", "--out", "unused"]) == 2
    assert one_line_error(capsys) == "napari-livecell: error: Is a directory: /somewhere/x.json"


# --- item 10: clashing output names, outputs never read as inputs --------------------------


@pytest.fixture(scope="module")
def small_tif(tmp_path_factory, small_frame):
    path = tmp_path_factory.mktemp("small") / "cells.tif"
    tifffile.imwrite(path, small_frame.image)
    return path


def test_same_stem_different_suffix_is_refused_before_any_work(tmp_path, capsys, small_frame):
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", small_frame.image)
    iio.imwrite(folder / "a.png", small_frame.image)
    out = tmp_path / "out"
    assert main(["segment", str(folder), "--device", "cpu", "--out", str(out)]) == 2
    line = one_line_error(capsys)
    assert "a.tif" in line and "a.png" in line and "a_labels.tif" in line
    assert not out.exists() or list(out.iterdir()) == []


def test_same_name_in_two_folders_is_refused(tmp_path, capsys, small_tif):
    for plate in ("plateA", "plateB"):
        (tmp_path / plate).mkdir()
        shutil.copy(small_tif, tmp_path / plate / "well1.tif")
    out = tmp_path / "out"
    code = main(["segment", str(tmp_path / "plate*" / "*.tif"), "--device", "cpu", "--out", str(out)])
    assert code == 2
    line = one_line_error(capsys)
    plates = tmp_path.resolve()
    assert str(plates / "plateA" / "well1.tif") in line and str(plates / "plateB" / "well1.tif") in line
    assert not out.exists() or list(out.iterdir()) == []


def test_an_input_that_an_output_would_overwrite_is_refused(tmp_path, capsys, small_tif):
    shutil.copy(small_tif, tmp_path / "a.tif")
    shutil.copy(small_tif, tmp_path / "a_labels.tif")
    args = [str(tmp_path / "a.tif"), str(tmp_path / "a_labels.tif")]
    assert main(["segment", *args, "--device", "cpu", "--out", str(tmp_path)]) == 2
    assert "would overwrite the input" in one_line_error(capsys)


def test_segment_dir_into_itself_never_reads_its_outputs(tmp_path, capsys, small_tif):
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(small_tif, folder / "cells.tif")
    out = folder / "results"
    assert main(["segment", str(folder), "--device", "cpu", "--out", str(out)]) == 0
    # outputs beside the images, e.g. from an earlier run with --out data
    for name in ("cells_labels.tif", "cells_outlines.png"):
        shutil.copy(out / name, folder / name)
    capsys.readouterr()
    pattern = str(folder / "**" / "*")
    assert main(["segment", str(folder), pattern, "--device", "cpu", "--out", str(out), "--overwrite"]) == 0
    captured = capsys.readouterr()
    assert "skipped 2 segmentation output(s)" in captured.err
    assert f"2 file(s) inside --out {out}" in captured.err
    assert sorted(p.name for p in out.iterdir()) == [
        "cells_labels.tif",
        "cells_outlines.png",
        "predictions.json",
    ]
    predictions = json.loads((out / "predictions.json").read_text())
    assert [image["file_name"] for image in predictions["images"]] == ["cells.tif"]


def test_segment_dir_with_out_dir_refuses_to_read_its_own_folder(tmp_path, capsys, small_tif):
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(small_tif, folder / "cells.tif")
    assert main(["segment", str(folder), "--device", "cpu", "--out", str(folder)]) == 2
    line = one_line_error(capsys)
    assert "inside --out" in line and str(folder) in line
    assert sorted(p.name for p in folder.iterdir()) == ["cells.tif"]


def test_convert_to_tif_refuses_two_images_with_one_name(tmp_path, capsys):
    coco = {
        "images": [
            {"id": 1, "file_name": "plateA/well1.tif", "width": 32, "height": 24},
            {"id": 2, "file_name": "plateB/well1.tif", "width": 32, "height": 24},
        ],
        "annotations": [],
        "categories": [{"id": 1, "name": "cell"}],
    }
    source = tmp_path / "plates.json"
    source.write_text(json.dumps(coco))
    out = tmp_path / "labels"
    assert main(["convert", str(source), str(out), "--to", "tif"]) == 2
    line = one_line_error(capsys)
    assert "plateA/well1.tif" in line and "plateB/well1.tif" in line and "well1_labels.tif" in line
    assert not out.exists() or list(out.iterdir()) == []


def test_convert_to_tif_writes_one_file_per_image(tmp_path, capsys):
    coco = {
        "images": [
            {"id": 1, "file_name": "plateA/well1.tif", "width": 32, "height": 24},
            {"id": 2, "file_name": "plateA/well2.tif", "width": 32, "height": 24},
        ],
        "annotations": [],
        "categories": [{"id": 1, "name": "cell"}],
    }
    source = tmp_path / "plates.json"
    source.write_text(json.dumps(coco))
    out = tmp_path / "labels"
    assert main(["convert", str(source), str(out), "--to", "tif"]) == 0
    assert "wrote 2 label TIFF(s)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["well1_labels.tif", "well2_labels.tif"]


# --- item 12: progress inside a frame -------------------------------------------------------


def test_segment_reports_tile_progress_inside_a_large_frame(tmp_path, capsys):
    from napari_livecell.core.inference.tiling import tile_grid
    from napari_livecell.core.training.synthetic import synthesize_image

    frame = synthesize_image(seed=77, n_cells=60, shape=(700, 700)).image
    tifffile.imwrite(tmp_path / "big.tif", frame)
    args = ["segment", str(tmp_path / "big.tif"), "--imgsz", "256", "--tile", "on", "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    n_tiles = len(tile_grid((700, 700), (256, 256), 64))
    assert n_tiles > 1
    assert re.search(rf"\b0/{n_tiles} \[", err) and "tile" in err, err[-2000:]
    assert re.search(rf"\b{n_tiles}/{n_tiles} \[", err), "the tile bar reaches the end"


def test_segment_counts_frames_of_a_stack(tmp_path, capsys, small_frame):
    tifffile.imwrite(tmp_path / "stack.tif", np.stack([small_frame.image] * 3), photometric="minisblack")
    out = str(tmp_path / "out")
    assert main(["segment", str(tmp_path / "stack.tif"), "--device", "cpu", "--out", out]) == 0
    err = capsys.readouterr().err
    assert re.search(r"stack\.tif.*\b0/3 \[.*frame", err), err[-2000:]
