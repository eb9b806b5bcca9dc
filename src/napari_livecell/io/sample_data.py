"""Sample data for File > Open Sample: synthetic LIVECell-like images with ground truth."""

from __future__ import annotations

SAMPLE_SEED = 2021  # LIVECell's publication year; any fixed seed works
SAMPLE_NAME = "SkBr3_Phase_A1_1_00d00h00m_1"


def sample_image() -> list[tuple]:
    """A 704 x 520 synthetic phase-contrast frame and its exact cells."""
    from napari_livecell.core.training.synthetic import synthesize_image

    sample = synthesize_image(seed=SAMPLE_SEED, n_cells=150)
    return [
        (sample.image, {"name": SAMPLE_NAME}, "image"),
        (sample.labels, {"name": f"{SAMPLE_NAME} ground truth", "visible": False}, "labels"),
    ]


def sample_timelapse() -> list[tuple]:
    """A short synthetic time-lapse (5 frames) where cells drift and divide.

    The ground truth is tracked: a cell keeps its id (and colour) in every
    frame, and daughters get new ids at a division.
    """
    from napari_livecell.core.training.synthetic import synthesize_timelapse

    sample = synthesize_timelapse(seed=SAMPLE_SEED, n_frames=5, n_cells=80)
    name = "SkBr3_Phase_A1_1_timelapse_1"
    return [
        (sample.image, {"name": name}, "image"),
        # track_labels: one id per cell over its whole life (what tracking should give)
        (sample.track_labels, {"name": f"{name} ground truth", "visible": False}, "labels"),
    ]
