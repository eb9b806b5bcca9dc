"""Numbers checked as the command line is read, names that cannot leave their folder, no silent overwrite."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_livecell.cli import main


def one_line_refusal(argv: list[str], capsys) -> str:
    """Run ``main``; the error it printed (one line, exit code 2)."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refuses while reading the command line
        code = exit_.code
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("napari-livecell"), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "default", "--out", "{tmp}/m.onnx", "--imgsz", "0"], "--imgsz: 0 is out of range"),
        (["export", "default", "--out", "{tmp}/m.onnx", "--imgsz", "100000"], "use 32 to 8192"),
        (["export", "default", "--out", "{tmp}/m.onnx", "--imgsz", "320", "320", "320"], "one size or H W"),
        (["train", "--data", "{tmp}", "--out", "{tmp}/run", "--epochs", "0"], "argument --epochs"),
        (["train", "--data", "{tmp}", "--out", "{tmp}/run", "--batch", "0"], "argument --batch"),
        (["train", "--data", "{tmp}", "--out", "{tmp}/run", "--imgsz", "-1"], "argument --imgsz"),
        (["train", "--data", "{tmp}", "--out", "{tmp}/run", "--epochs", "ten"], "not a whole number"),
        (
            ["track", "{tmp}/s.tif", "--out", "{tmp}/t", "--pixel-size", "-1"],
            "--pixel-size: pixel size must be a positive",
        ),
        (
            ["track", "{tmp}/s.tif", "--out", "{tmp}/t", "--pixel-size", "nan"],
            "pixel size must be a positive number",
        ),
        (["track", "{tmp}/s.tif", "--out", "{tmp}/t", "--max-distance", "nan"], "argument --max-distance"),
        (["track", "{tmp}/s.tif", "--out", "{tmp}/t", "--max-gap", "-1"], "argument --max-gap"),
        (
            ["measure", "{tmp}/s.tif", "--out", "{tmp}/m.csv", "--pixel-size", "0"],
            "--pixel-size: pixel size must be a positive",
        ),
        (["segment", "{tmp}/s.tif", "--out", "{tmp}/o", "--conf", "1.5"], "argument --conf"),
        (
            ["segment", "{tmp}/s.tif", "--out", "{tmp}/o", "--pixel-size", "inf"],
            "--pixel-size: pixel size must be a positive",
        ),
        (["segment", "{tmp}/s.tif", "--out", "{tmp}/o", "--threads", "0"], "argument --threads"),
        (["segment", "{tmp}/s.tif", "--out", "{tmp}/o", "--triton-model", "../X"], "path separator"),
        (["segment", "{tmp}/s.tif", "--out", "{tmp}/o", "--triton-model", "/abs"], "absolute path"),
        (["export", "default", "--triton", "{tmp}/repo", "--triton-model", "../../X"], "path separator"),
        (["export", "default", "--triton", "{tmp}/repo", "--triton-model", ".."], "names a folder"),
        (["export", "default", "--triton", "{tmp}/repo", "--triton-model", "CON"], "reserved"),
    ],
)
def test_bad_numbers_and_names_are_one_line_before_any_work(tmp_path, capsys, argv, message):
    before = sorted(tmp_path.rglob("*"))
    line = one_line_refusal([part.format(tmp=tmp_path) for part in argv], capsys)
    assert message in line
    assert sorted(tmp_path.rglob("*")) == before, "nothing written"
    assert not (tmp_path.parent / "X").exists()


def test_measure_refuses_a_txt_out_before_making_its_folder(tmp_path, capsys):
    labels = tmp_path / "l.tif"
    tifffile.imwrite(labels, np.zeros((8, 8), np.uint16))
    line = one_line_refusal(["measure", str(labels), "--out", str(tmp_path / "new" / "m.txt")], capsys)
    assert "must be a .csv file" in line
    assert not (tmp_path / "new").exists()


def test_track_refuses_negative_label_ids(tmp_path, capsys):
    stack = np.zeros((3, 32, 32), np.int32)
    stack[:, 4:10, 4:10] = 1
    stack[:, 20:26, 20:26] = -2  # a cell the old reader dropped silently
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack")
    line = one_line_refusal(["track", str(tmp_path / "s.tif"), "--out", str(tmp_path / "t")], capsys)
    assert "negative label ids" in line and "-2" in line
    frames = tmp_path / "frames"
    frames.mkdir()
    for index, frame in enumerate(stack):
        tifffile.imwrite(frames / f"f{index}.tif", frame)
    line = one_line_refusal(["track", str(frames), "--out", str(tmp_path / "t2")], capsys)
    assert "negative label ids" in line


def test_export_into_a_repository_that_holds_the_model_needs_overwrite(tmp_path, capsys):
    model = tmp_path / "repo" / "livecell"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text("the user's own config")
    (model / "1" / "model.py").write_text("the user's own code")
    line = one_line_refusal(["export", "default", "--triton", str(tmp_path / "repo")], capsys)
    assert "already holds a model 'livecell'" in line and "--overwrite" in line
    assert (model / "config.pbtxt").read_text() == "the user's own config"
    assert (model / "1" / "model.py").read_text() == "the user's own code"


def test_a_second_segment_run_into_one_out_never_loses_predictions(tmp_path, capsys, small_frame):
    images = tmp_path / "images"
    images.mkdir()
    tifffile.imwrite(images / "a.tif", small_frame.image)
    tifffile.imwrite(images / "b.tif", small_frame.image[:, ::-1])
    out = tmp_path / "out"
    assert (
        main(["segment", str(images / "a.tif"), "--out", str(out), "--device", "cpu", "--runtime", "torch"])
        == 0
    )
    first = (out / "predictions.json").read_bytes()
    capsys.readouterr()
    line = one_line_refusal(
        ["segment", str(images / "b.tif"), "--out", str(out), "--device", "cpu", "--runtime", "torch"], capsys
    )
    assert "earlier run" in line and "--overwrite" in line
    assert (out / "predictions.json").read_bytes() == first and not (out / "b_labels.tif").exists()
    argv = [
        "segment",
        str(images / "b.tif"),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--runtime",
        "torch",
        "--overwrite",
    ]
    assert main(argv) == 0
    assert [i["file_name"] for i in json.loads((out / "predictions.json").read_text())["images"]] == ["b.tif"]


def test_a_run_that_finds_predictions_written_meanwhile_keeps_its_own(tmp_path, capsys):
    """Two runs at once into one --out: the later one writes predictions-2.json, never over the other's."""
    from napari_livecell.cli.segment import write_predictions

    (tmp_path / "predictions.json").write_text('{"the other run": 1}')
    written = write_predictions(tmp_path, {"images": [], "annotations": []}, overwrite=False)
    assert written.name == "predictions-2.json"
    assert json.loads((tmp_path / "predictions.json").read_text()) == {"the other run": 1}
    assert json.loads(written.read_text()) == {"images": [], "annotations": []}
    assert "predictions-2.json" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions-2.json", "predictions.json"]


def test_two_segment_runs_at_once_both_keep_their_predictions(tmp_path, small_frame):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a", "b"):
        tifffile.imwrite(images / f"{name}.tif", small_frame.image)
    out = tmp_path / "out"
    out.mkdir()
    options = ["--out", str(out), "--device", "cpu", "--runtime", "torch"]
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "napari_livecell.cli", "segment", str(images / f"{name}.tif"), *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for name in ("a", "b")
    ]
    results = [run.communicate(timeout=300) for run in runs]
    codes = [run.returncode for run in runs]
    saved = sorted(out.glob("predictions*.json"))
    named = sorted(i["file_name"] for path in saved for i in json.loads(path.read_text())["images"])
    # each run either refused at its start (the other had finished) or kept its predictions
    assert all(code in (0, 2) for code in codes), results
    assert named == sorted(f"{n}.tif" for n, code in zip("ab", codes, strict=True) if code == 0), results


def test_quantize_on_blank_frames_is_one_line(tmp_path, capsys):
    pytest.importorskip("nncf")
    blank = tmp_path / "blank.tif"
    tifffile.imwrite(blank, np.full((64, 64), 7, np.uint16))
    line = one_line_refusal(["quantize", str(blank)], capsys)
    assert "no frames to calibrate" in line and "blank" in line
    line = one_line_refusal(["quantize", str(blank), "--frames", "0"], capsys)
    assert "argument --frames" in line
