"""``convert`` dispatches through the core's table: every entry resolves, every refusal is one line."""

import pytest

from napari_livecell.cli import main
from napari_livecell.core.formats.convert import CONVERSIONS, conversion_for, source_kind


def test_every_entry_of_the_table_resolves_to_its_function():
    for (kind, target), conversion in CONVERSIONS.items():
        assert kind != target and conversion.writes in ("file", "folder")
        assert callable(conversion.resolve()), conversion.function


def test_inputs_are_told_apart_and_pairs_not_in_the_table_are_refused(tmp_path):
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "yolo").mkdir()
    (tmp_path / "yolo" / "data.yaml").write_text("names: {0: cell}\n")
    (tmp_path / "tifs").mkdir()
    (tmp_path / "tifs" / "x_labels.tif").write_bytes(b"")
    assert [source_kind(tmp_path / name) for name in ("a.json", "yolo", "tifs")] == ["coco", "yolo", "tif"]
    with pytest.raises(ValueError, match="the input is already COCO json: use --to yolo or --to tif"):
        conversion_for("coco", "coco")
    with pytest.raises(ValueError, match="label TIFFs converts --to coco"):
        conversion_for("tif", "yolo")


def test_a_conversion_missing_its_images_is_one_line(tmp_path, capsys):
    (tmp_path / "a.json").write_text("{}")
    assert main(["convert", str(tmp_path / "a.json"), str(tmp_path / "out"), "--to", "yolo"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("napari-livecell: error: --images DIR is required") and "\n" not in error
    assert not (tmp_path / "out").exists(), "refused before the output folder is made"
