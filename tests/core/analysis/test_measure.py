"""Per-cell measurements: regionprops_table's numbers, units that follow the pixel size, summaries."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from skimage.measure import regionprops_table

from napari_livecell.core.analysis.measure import (
    cell_columns,
    measure_cells,
    summary_path,
    with_image_name,
    write_measurements_csv,
)
from napari_livecell.core.training.synthetic import synthesize_image

PROPERTIES = (
    "label",
    "area",
    "perimeter",
    "equivalent_diameter_area",
    "eccentricity",
    "solidity",
    "intensity_mean",
    "intensity_max",
    "centroid",
)


@pytest.fixture(scope="module")
def frame():
    return synthesize_image(seed=7, n_cells=30, shape=(128, 160))


def test_measurements_equal_regionprops_table(frame):
    expected = regionprops_table(frame.labels, frame.image, properties=PROPERTIES)
    cells = measure_cells(frame.labels, frame.image).cells
    assert list(cells.columns) == cell_columns(None)
    assert cells["label"].tolist() == expected["label"].tolist()
    assert len(cells) == len(np.unique(frame.labels[frame.labels > 0]))
    pairs = {
        "area_px": "area",
        "perimeter_px": "perimeter",
        "equivalent_diameter_px": "equivalent_diameter_area",
        "eccentricity": "eccentricity",
        "solidity": "solidity",
        "mean_intensity": "intensity_mean",
        "max_intensity": "intensity_max",
        "centroid_y_px": "centroid-0",
        "centroid_x_px": "centroid-1",
    }
    for ours, theirs in pairs.items():
        np.testing.assert_allclose(cells[ours].to_numpy(), expected[theirs], err_msg=ours)
    assert (cells["frame"] == 0).all()


def test_units_switch_with_the_pixel_size(frame):
    in_px = measure_cells(frame.labels, frame.image).cells
    in_um = measure_cells(frame.labels, frame.image, pixel_size_um=0.5).cells
    assert list(in_um.columns) == cell_columns(0.5)
    assert {"area_um2", "perimeter_um", "equivalent_diameter_um"} <= set(in_um.columns)
    assert not {"area_px", "perimeter_px"} & set(in_um.columns)
    np.testing.assert_allclose(in_um["area_um2"], in_px["area_px"] * 0.25)
    np.testing.assert_allclose(in_um["perimeter_um"], in_px["perimeter_px"] * 0.5)
    np.testing.assert_allclose(in_um["equivalent_diameter_um"], in_px["equivalent_diameter_px"] * 0.5)
    # shape ratios, intensities and pixel centroids do not depend on the unit
    for column in ("eccentricity", "solidity", "mean_intensity", "centroid_y_px"):
        np.testing.assert_allclose(in_um[column], in_px[column])
    with pytest.raises(ValueError, match="pixel size"):
        measure_cells(frame.labels, pixel_size_um=0)


def test_summary_equals_counts_from_the_labels(frame):
    result = measure_cells(frame.labels, frame.image, pixel_size_um=2.0)
    row = result.summary.iloc[0]
    ids, areas = np.unique(frame.labels[frame.labels > 0], return_counts=True)
    assert row["cell_count"] == len(ids)
    assert row["confluence_percent"] == pytest.approx(100 * (frame.labels > 0).mean())
    assert row["mean_cell_area_um2"] == pytest.approx(areas.mean() * 4.0)
    assert result.cells["area_um2"].mean() == pytest.approx(row["mean_cell_area_um2"])


def test_a_lazy_stack_is_measured_frame_by_frame_and_joined_with_the_cell_table(frame):
    second = synthesize_image(seed=8, n_cells=12, shape=(128, 160))
    labels = np.stack([frame.labels, np.where(second.labels > 0, second.labels + 100, 0)])
    image = np.stack([frame.image, second.image])
    lazy = da.from_array(labels, chunks=(1, 128, 160))
    features = pd.DataFrame(
        {
            "index": [3, 101],
            "frame": [0, 1],
            "score": [0.75, 0.5],
            "class": ["A172", "A172"],
            "area": [1, 1],
            "status": ["accepted", "edited"],
        }
    )
    result = measure_cells(lazy, da.from_array(image, chunks=(1, 128, 160)), features=features)
    cells = result.cells.set_index(["frame", "label"])
    assert cells.loc[(0, 3), "status"] == "accepted"
    assert cells.loc[(1, 101), "score"] == 0.5
    assert cells.loc[(1, 101), "class"] == "A172"
    assert np.isnan(cells.loc[(0, 1), "score"]) and cells.loc[(0, 1), "status"] == ""
    counts = [len(np.unique(plane[plane > 0])) for plane in labels]
    assert result.summary["cell_count"].tolist() == counts
    assert result.summary["frame"].tolist() == [0, 1]
    second_only = measure_cells(labels[1], image[1]).cells
    np.testing.assert_allclose(cells.loc[1, "area_px"].to_numpy(), second_only["area_px"].to_numpy())


def test_bad_input_is_one_clear_error(frame):
    with pytest.raises(ValueError, match="does not match"):
        measure_cells(frame.labels, frame.image[:10])
    with pytest.raises(ValueError, match="integers"):
        measure_cells(frame.labels.astype(float))


def test_an_empty_frame_has_no_cells_and_zero_confluence():
    result = measure_cells(np.zeros((20, 30), np.int32), np.ones((20, 30)))
    assert result.cells.empty and list(result.cells.columns) == cell_columns(None)
    assert result.summary.iloc[0]["cell_count"] == 0
    assert result.summary.iloc[0]["confluence_percent"] == 0.0


def test_csv_round_trip(tmp_path, frame):
    result = measure_cells(frame.labels, frame.image, pixel_size_um=0.5)
    path = write_measurements_csv(tmp_path / "cells.csv", with_image_name(result.cells, "a"))
    back = pd.read_csv(path)
    assert list(back.columns) == ["image", *cell_columns(0.5)]
    np.testing.assert_allclose(back["area_um2"], result.cells["area_um2"], rtol=1e-5)
    assert summary_path(path) == tmp_path / "cells_summary.csv"
