"""``napari-livecell review-sim``: a review replayed with the simulated annotator, learning on."""

from __future__ import annotations

import json

import pytest

from napari_livecell.cli import main
from tests.core.training.learning_data import STEPS, tiny_gt

pytest.importorskip("ultralytics")


def test_a_review_with_learning_reports_actions_per_image_and_its_rounds(tmp_path, capsys):
    gt, images = tiny_gt(tmp_path / "data", n=5)
    work = tmp_path / "work"
    argv = ["review-sim", "--gt", str(gt), "--images", str(images), "--learn", "on", "--every", "3"]
    assert main([*argv, "--steps", str(STEPS), "--work", str(work), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["actions"]) == 5 and all(isinstance(a, int) and a >= 0 for a in result["actions"])
    assert sorted(result["images"]) == [f"frame{n}" for n in range(5)]
    assert result["models"][:3] == ["shipped model"] * 3  # segmented before any round
    (learned,) = result["rounds"]  # 3 done: one round; the last 2 are not enough for another
    assert learned["number"] == 1 and len(learned["images"]) == 3 and learned["held_out"] == 1
    later = "round-1.pt" if learned["accepted"] else "shipped model"
    assert result["models"][3:] == [later] * 2
    assert not any(path.parent == images for path in work.rglob("review.db"))  # the user's folder untouched
    assert not (images.parent / "images" / "napari-livecell-review").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--learn", "off", "--every", "2"], "--every needs --learn on"),
        (["--learn", "on", "--every", "0"], "--every"),
        (["--learn", "maybe"], "--learn"),
    ],
)
def test_bad_options_are_one_line(tmp_path, capsys, extra, message):
    gt, images = tiny_gt(tmp_path / "data", n=1)
    assert main(["review-sim", "--gt", str(gt), "--images", str(images), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_missing_json_is_one_line(tmp_path, capsys):
    assert (
        main(["review-sim", "--gt", str(tmp_path / "no.json"), "--images", str(tmp_path), "--learn", "off"])
        == 2
    )
    assert "no such file" in capsys.readouterr().err
