"""Growth curves: cell count, confluence, mean cell area per frame (issue 18)."""

import numpy as np
import pandas as pd
import pytest

from napari_livecell.core.analysis.growth import growth_curves, write_growth_csv
from napari_livecell.core.training.synthetic import synthesize_timelapse


@pytest.fixture(scope="module")
def lapse():
    return synthesize_timelapse(seed=1, n_frames=5, n_cells=30, shape=(150, 180))


def test_growth_csv_equals_counts_from_the_labels(lapse, tmp_path):
    table = growth_curves(lapse.labels)
    path = write_growth_csv(tmp_path / "growth.csv", table)
    read = pd.read_csv(path)
    assert list(read.columns) == ["frame", "cell_count", "confluence_percent", "mean_cell_area_px"]
    for t, frame in enumerate(lapse.labels):
        ids, areas = np.unique(frame[frame > 0], return_counts=True)
        row = read.iloc[t]
        assert row["frame"] == t
        assert row["cell_count"] == len(ids)
        assert row["confluence_percent"] == pytest.approx(100 * (frame > 0).mean(), rel=1e-5)
        assert row["mean_cell_area_px"] == pytest.approx(areas.mean(), rel=1e-5)
    # the synthetic culture grows: divisions add cells
    assert read["cell_count"].iloc[-1] > read["cell_count"].iloc[0]


def test_lazy_stack_single_frame_and_pixel_size(lapse):
    da = pytest.importorskip("dask.array")
    lazy = growth_curves(da.from_array(lapse.labels, chunks=(1, 150, 180)), pixel_size_um=0.5)
    eager = growth_curves(lapse.labels)
    assert np.allclose(lazy[eager.columns].to_numpy(), eager.to_numpy())
    assert np.allclose(lazy["mean_cell_area_um2"], eager["mean_cell_area_px"] * 0.25)
    one = growth_curves(lapse.labels[0])
    assert len(one) == 1 and one["cell_count"][0] == eager["cell_count"][0]


def test_empty_frame_has_no_mean_area():
    table = growth_curves(np.zeros((2, 8, 8), np.int32))
    assert (table["cell_count"] == 0).all() and (table["confluence_percent"] == 0).all()
    assert table["mean_cell_area_px"].isna().all()


def test_every_growth_panel_starts_at_zero(lapse):
    from matplotlib.figure import Figure

    from napari_livecell.core.analysis.growth import plot_growth

    table = growth_curves(lapse.labels)
    table["confluence_percent"] = np.linspace(3.0, 3.8, len(table))  # a small change must look small
    axes = plot_growth(Figure(), table)
    for ax in axes:
        bottom, top = ax.get_ylim()
        assert bottom == 0 and top > 0
    assert axes[1].get_ylim()[1] >= 3.8


@pytest.mark.parametrize("width_inches", [3.2, 4.0])
def test_a_long_layer_name_stays_inside_the_plot(lapse, width_inches):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from napari_livecell.core.analysis.growth import plot_growth

    figure = Figure(figsize=(width_inches, 4.5), dpi=90)
    canvas = FigureCanvasAgg(figure)
    name = "SkBr3_Phase_A1_1_00d00h00m_1_timelapse_of_a_very_long_experiment cells"
    plot_growth(figure, growth_curves(lapse.labels), title=name)
    canvas.draw()
    title = figure._suptitle
    box = title.get_window_extent(canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= figure.bbox.width
    shown = title.get_text()
    assert shown.startswith("SkBr3_Phase") and shown.endswith("cells") and "…" in shown
