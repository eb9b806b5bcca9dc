"""``napari-livecell measure``: label TIFFs (+ their images) in, per-cell and summary CSVs out."""

import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage.measure import regionprops_table

from napari_livecell.cli import main
from napari_livecell.core.analysis.measure import cell_columns, summary_columns
from napari_livecell.core.training.synthetic import synthesize_image


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("measure")
    (folder / "labels").mkdir()
    (folder / "images").mkdir()
    frames = {}
    for seed, stem in ((1, "a"), (2, "b")):
        frame = synthesize_image(seed=seed, n_cells=30, shape=(128, 160))
        tifffile.imwrite(folder / "labels" / f"{stem}_labels.tif", frame.labels.astype(np.uint16))
        tifffile.imwrite(folder / "images" / f"{stem}.tif", frame.image)
        frames[stem] = frame
    return folder, frames


def test_measure_writes_the_cell_and_summary_csvs(dataset, capsys):
    folder, frames = dataset
    out = folder / "out" / "cells.csv"
    argv = ["measure", str(folder / "labels"), "--images", str(folder / "images")]
    assert main([*argv, "--pixel-size", "0.5", "--out", str(out)]) == 0
    cells = pd.read_csv(out)
    assert list(cells.columns) == ["image", *cell_columns(0.5)]
    assert sorted(cells["image"].unique()) == ["a", "b"]
    first = cells[cells["image"] == "a"]
    expected = regionprops_table(
        frames["a"].labels, frames["a"].image, properties=("label", "area", "intensity_mean")
    )
    assert first["label"].tolist() == expected["label"].tolist()
    np.testing.assert_allclose(first["area_um2"], expected["area"] * 0.25, rtol=1e-5)
    np.testing.assert_allclose(first["mean_intensity"], expected["intensity_mean"], rtol=1e-5)
    summary = pd.read_csv(folder / "out" / "cells_summary.csv")
    assert list(summary.columns) == ["image", *summary_columns(0.5)]
    for stem, frame in frames.items():
        row = summary[summary["image"] == stem].iloc[0]
        assert row["cell_count"] == len(np.unique(frame.labels)) - 1
        assert row["confluence_percent"] == pytest.approx(100 * (frame.labels > 0).mean(), rel=1e-5)
    n_cells = sum(len(np.unique(frame.labels)) - 1 for frame in frames.values())
    assert f"{n_cells} cells in 2 label file(s)" in capsys.readouterr().out


def test_without_images_or_pixel_size_lengths_are_in_px(dataset):
    folder, _ = dataset
    out = folder / "px.csv"
    assert main(["measure", str(folder / "labels" / "a_labels.tif"), "--out", str(out)]) == 0
    cells = pd.read_csv(out)
    assert {"area_px", "perimeter_px", "equivalent_diameter_px"} <= set(cells.columns)
    assert cells["mean_intensity"].isna().all()
    assert "mean_cell_area_px" in pd.read_csv(folder / "px_summary.csv").columns


def test_bad_input_is_one_line(dataset, capsys):
    folder, _ = dataset
    labels = str(folder / "labels")
    assert main(["measure", labels, "--images", str(folder / "labels"), "--out", str(folder / "x.csv")]) == 2
    assert main(["measure", labels, "--pixel-size", "0", "--out", str(folder / "x.csv")]) == 2
    assert main(["measure", labels, "--out", str(folder / "x.txt")]) == 2
    errors = capsys.readouterr().err
    assert "no image named a.*" in errors and "pixel size" in errors and ".csv" in errors
    assert not (folder / "x.csv").exists()
