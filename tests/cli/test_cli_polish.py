"""The command line reads as one tool: help on every option, --version, AP one way, progress in frames."""

import argparse
import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_livecell import __version__
from napari_livecell.cli import build_parser, main
from napari_livecell.core.formats.coco import CocoImage, build_coco
from napari_livecell.core.segmentation import Segmentation
from napari_livecell.core.training.synthetic import synthesize_image, synthesize_timelapse


def subcommands():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, sub.choices


def test_every_option_of_every_subcommand_has_help():
    _, commands = subcommands()
    missing = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, command in commands.items()
        for action in command._actions
        if not action.help and not isinstance(action, argparse._HelpAction)
    ]
    assert missing == []


def test_version_and_a_top_level_help_for_every_modality(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"napari-livecell {__version__}"
    parser, _ = subcommands()
    description = parser.description
    assert "fluorescence" in description and "phase contrast" in description


def small_cells(seed: int) -> np.ndarray:
    """Cells of 8 x 8 px: none is medium or large in LIVECell's area ranges."""
    labels = np.zeros((64, 64), np.int32)
    rng = np.random.default_rng(seed)
    for cell, (row, col) in enumerate(rng.choice(6, (10, 2)) * 10 + 2, start=1):
        labels[row : row + 8, col : col + 8] = cell
    return labels


def test_evaluate_prints_percent_and_explains_a_missing_size_range(tmp_path, capsys):
    truth = small_cells(0)
    gt = build_coco([CocoImage(1, "a.png", Segmentation.from_labels(truth))])
    predicted = Segmentation.from_labels(truth, scores=np.linspace(0.5, 1.0, int(truth.max())))
    pred = build_coco([CocoImage(1, "a.png", predicted)], with_scores=True)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(pred["annotations"]))
    assert main(["evaluate", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json")]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line.split("|")[2:4] for line in out.splitlines() if "| AP" in line}
    assert [cell.strip() for cell in rows["AP"]] == ["100.0", "100.0"]  # percent, as the --model table
    assert [cell.strip() for cell in rows["APl"]] == ["n/a", "n/a"]
    assert "-1.0" not in out
    assert "note: APl is n/a: no large cells (961 px and more) in the ground truth" in out


def test_track_progress_counts_frames(tmp_path, capsys):
    lapse = synthesize_timelapse(seed=4, n_frames=4, n_cells=8, shape=(64, 72))
    stack = tmp_path / "movie.tif"
    tifffile.imwrite(stack, lapse.labels.astype(np.uint16), photometric="minisblack")
    assert main(["track", str(stack), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "0/4" in err and "/9" not in err  # 4 frames: 4 units a pass, never 2 T + 1


def test_measure_finds_a_predictions_json_images_by_file_name(tmp_path, capsys):
    sample = synthesize_image(seed=3, n_cells=20, shape=(96, 112))
    segmentation = Segmentation.from_labels(
        sample.labels, scores=np.linspace(0.5, 0.9, int(sample.labels.max()))
    )
    coco = build_coco([CocoImage(1, "field_07.png", segmentation)], with_scores=True)
    (tmp_path / "predictions.json").write_text(json.dumps(coco))
    images = tmp_path / "images"
    images.mkdir()
    tifffile.imwrite(images / "field_07.tif", sample.image)
    out = tmp_path / "cells.csv"
    args = ["measure", str(tmp_path / "predictions.json"), "--images", str(images), "--out", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    cells = pd.read_csv(out)
    assert len(cells) == int(sample.labels.max())
    assert cells["mean_intensity"].notna().all()
    assert set(cells["status"]) == {"predicted"}  # the model's own cells, not a person's annotations
