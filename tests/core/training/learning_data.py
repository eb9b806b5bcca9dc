"""A tiny review dataset for the learning tests: 128 px fluorescence frames the shipped model half knows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = 128
N_IMAGES = 6
STEPS = 4  # optimizer steps of a test round: seconds, not minutes


def model_cells(labels: np.ndarray) -> np.ndarray:
    """A model's imperfect result: every third cell missed."""
    kept = np.where(np.isin(labels, np.unique(labels)[1::3]), 0, labels)
    return kept.astype(np.int32)


def tiny_review(root: Path, done: int = 4) -> tuple:
    """Images with a model's cells; the first ``done`` corrected (their truth) and marked done.

    Returns the dataset and the truth of every image by name.
    """
    import tifffile

    from napari_livecell.core.segmentation import Segmentation
    from napari_livecell.core.training.synthetic import synthesize_image
    from napari_livecell.io.review import ReviewDataset

    (root / "images").mkdir(parents=True)
    truth = {}
    for number in range(N_IMAGES):
        sample = synthesize_image(seed=100 + number, n_cells=12, shape=(SIZE, SIZE), look="fluorescence")
        tifffile.imwrite(root / "images" / f"img{number}.tif", sample.image)
        truth[f"img{number}"] = sample.labels
    dataset = ReviewDataset.open(root / "images")
    for name, labels in truth.items():
        dataset.save_prediction(name, Segmentation.from_labels(model_cells(labels)))
    for name in list(truth)[:done]:
        dataset.save_cells(name, truth[name], {})
        dataset.set_state(name, "done")
    return dataset, truth


def tiny_gt(root: Path, n: int = N_IMAGES, seed: int = 200) -> tuple[Path, Path]:
    """A COCO json of the true cells of ``n`` tiny fluorescence frames, and their folder."""
    import tifffile

    from napari_livecell.core.formats.coco import CocoImage, build_coco, write_coco
    from napari_livecell.core.segmentation import Segmentation
    from napari_livecell.core.training.synthetic import synthesize_image

    (root / "images").mkdir(parents=True)
    entries = []
    for number in range(n):
        sample = synthesize_image(seed=seed + number, n_cells=12, shape=(SIZE, SIZE), look="fluorescence")
        name = f"frame{number}.tif"
        tifffile.imwrite(root / "images" / name, sample.image)
        entries.append(
            CocoImage(
                image_id=number + 1, file_name=name, segmentation=Segmentation.from_labels(sample.labels)
            )
        )
    return write_coco(root / "gt.json", build_coco(entries, class_names={0: "cell"})), root / "images"
