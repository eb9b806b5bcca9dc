"""A dataset under review as napari layers: open an image with its cells, save its corrections.

:mod:`napari_livecell.core.training.review` keeps the index; this module turns one
image's cells file into layers (through the COCO reader, so statuses and the
prediction baseline come back) and a Labels layer back into that file
(through the COCO writer). Safe to call from a worker thread or from several
windows at once: the index allows one writer at a time.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from napari_livecell.core.training.review import ReviewIndex, cells_signal, open_index
from napari_livecell.layers import RESULT_KEY, cells_layer_name, outlines_layer_name

REVISION_KEY = "review_revision"  # in a cells layer's napari_livecell metadata: the revision it shows


class ReviewDataset:
    """The images of a folder (or a COCO json) and their cells, saved as the user works."""

    def __init__(self, index: ReviewIndex, conf: float = 0.4) -> None:
        self.index = index
        self.conf = conf
        self._lock = threading.RLock()

    @classmethod
    def open(cls, source: str | os.PathLike, conf: float = 0.4) -> ReviewDataset:
        """Open (or resume) the review of a folder of images or a COCO json with its images."""
        return cls(open_index(source), conf)

    @property
    def folder(self) -> Path:
        """Where the index and the cells files live."""
        return self.index.folder

    def queue(self) -> list[str]:
        """Image names in review order."""
        with self._lock:
            return self.index.queue()

    def set_state(self, name: str, state: str) -> None:
        """Change an image's state (saved at once)."""
        with self._lock:
            self.index.set_state(name, state)

    def image_layer(self, name: str) -> tuple:
        """The image of ``name`` as a layer data tuple, named after its file stem."""
        from napari_livecell.core.images import read_image

        entry = self.index.entry(name)
        return (
            read_image(entry.image),
            {"name": name, "metadata": {RESULT_KEY: {"paths": [entry.image]}}},
            "image",
        )

    def cell_layers(self, name: str) -> list[tuple]:
        """Its saved cells as ``<name> cells`` and ``<name> outlines`` layer data ([] if none yet)."""
        from napari_livecell.io.read import read_coco_layers

        entry = self.index.entry(name)
        path = self.index.cells_path(name)
        if not path.is_file():
            return []
        layers = []
        for data, kwargs, kind in read_coco_layers(str(path)):
            if kind == "image":
                continue
            kwargs = dict(kwargs)
            kwargs["name"] = cells_layer_name(name) if kind == "labels" else outlines_layer_name(name)
            if kind == "labels":
                info = kwargs["metadata"][RESULT_KEY]
                info["source"] = name
                info["source_path"] = entry.image
                info[REVISION_KEY] = entry.revision
            layers.append((data, kwargs, kind))
        return layers

    def save_cells(
        self, name: str, labels: Any, attributes: dict, origin: str = "person", replace_unopened: bool = False
    ) -> Path | None:
        """Write one image's cells (atomically, with their own record) and update its index row.

        Parameters
        ----------
        name : str
            The image.
        labels : array-like
            Its Labels layer's data.
        attributes : dict
            The layer's ``features`` and ``metadata`` (as napari hands them to writers). A
            ``review_revision`` in its ``napari_livecell`` metadata (set by :meth:`cell_layers`)
            makes a save from a view older than the saved cells raise
            :class:`~napari_livecell.core.training.review.ReviewConflict`; on success it is
            updated in place.
        origin : str
            ``"person"`` (an edit) or ``"model"`` (written only where the image has no cells yet).
        replace_unopened : bool
            A model's result may also replace a model's cells that nobody opened
            (:func:`~napari_livecell.core.training.review.unopened_prediction`).

        Returns
        -------
        Path or None
            The cells file, or None when a model's result was not written (cells exist already).
        """
        from napari_livecell.io.write import labels_coco

        entry = self.index.entry(name)
        metadata = dict(attributes.get("metadata") or {})
        original = metadata.get(RESULT_KEY)
        info = dict(original or {})
        expected = info.pop(REVISION_KEY, None)
        info["source_path"] = entry.image
        info["file_names"] = [Path(entry.image).name]
        metadata[RESULT_KEY] = info
        coco = labels_coco(labels, {**attributes, "metadata": metadata})
        signal = cells_signal(coco, entry.unannotated, self.conf)  # the cells as saved, not the table
        with self._lock:
            if info.get("categories"):
                categories = {int(k): str(v) for k, v in info["categories"].items()}
                if categories != self.index.categories:
                    self.index.set_categories(categories)
            revision = self.index.write_cells(name, coco, signal, origin, expected, replace_unopened)
        if revision is None:
            return None
        if isinstance(original, dict) and expected is not None:
            original[REVISION_KEY] = revision  # the layer now shows what is saved
        return self.index.cells_path(name)

    def save_prediction(self, name: str, segmentation: Any, replace_unopened: bool = False) -> Path | None:
        """Store a model's result for an image that has no cells yet (never over saved cells).

        With ``replace_unopened`` it also replaces a model's cells of an image
        nobody opened (a better model's result after a learning round).
        """
        from napari_livecell.layers import result_layer_data

        if not replace_unopened and self.index.adopt_cells_file(name):  # cells saved meanwhile
            return None
        (labels, kwargs, _), _ = result_layer_data(
            segmentation, name, (), {"metadata": {RESULT_KEY: {"source": name, "edited": False}}}
        )
        return self.save_cells(name, labels, kwargs, origin="model", replace_unopened=replace_unopened)

    def iter_measure(self, pixel_size_um: float | None = None) -> Any:
        """Measure the cells of every segmented image; yields ``(done, total)`` per image.

        Returns (as the generator's value) one :class:`~napari_livecell.core.analysis.measure.Measurements`
        for the whole dataset: the per-cell and per-image tables with an ``image`` column first,
        in queue order. Images without cells yet are left out (their summary row too).
        """
        import pandas as pd

        from napari_livecell.core.analysis.measure import Measurements, measure_cells, with_image_name
        from napari_livecell.core.images import read_image

        names = [name for name in self.queue() if self.index.entry(name).segmented]
        cells, summaries = [], []
        yield 0, len(names)
        for done, name in enumerate(names, start=1):
            labels_layer = next((layer for layer in self.cell_layers(name) if layer[2] == "labels"), None)
            if labels_layer is not None:
                labels, kwargs, _ = labels_layer
                image = read_image(self.index.entry(name).image)
                measured = measure_cells(labels, image, pixel_size_um, kwargs.get("features"))
                cells.append(with_image_name(measured.cells, name))
                summaries.append(with_image_name(measured.summary, name))
            yield done, len(names)
        if not cells:
            raise ValueError("no image of the dataset has cells yet: segment it first")
        return Measurements(
            cells=pd.concat(cells, ignore_index=True),
            summary=pd.concat(summaries, ignore_index=True),
            pixel_size_um=pixel_size_um,
        )

    def training_coco(self) -> Path:
        """Every image's corrected cells as one COCO json beside the index (for training)."""
        from napari_livecell.core.formats.coco import write_coco
        from napari_livecell.core.training.review import combined_coco

        with self._lock:
            coco = combined_coco(self.index)
        return write_coco(self.folder / "training.json", coco)


def resegment_unopened(dataset: ReviewDataset, names: list[str], weights: str | None, settings: Any):
    """Segment images nobody opened again with ``weights`` (a worker); yields ``(done, total, name)``.

    Each result replaces the image's cells only while nobody has opened it
    (checked inside the write, :meth:`ReviewDataset.save_prediction`); the
    model is recorded for each image written (``name`` is ``""`` for one
    skipped because a person opened it meanwhile).
    """
    from napari_livecell.core.images import read_image
    from napari_livecell.core.inference.pixel_size import file_pixel_size
    from napari_livecell.core.inference.run import Backend, FrameResult, iter_segment
    from napari_livecell.core.training.learning import LearningLog, model_label

    log = LearningLog(dataset.index)
    label = model_label(dataset.index, weights)
    backend = Backend(weights=weights, device="auto", runtime="auto")
    yield 0, len(names), ""
    for done, name in enumerate(names, start=1):
        entry = dataset.index.entry(name)
        if entry.state != "to review":
            yield done, len(names), ""
            continue
        pixel_size = file_pixel_size(entry.image)
        events = iter_segment(
            read_image(entry.image),
            backend,
            settings,
            None,
            pixel_size,
            "file metadata" if pixel_size else "",
        )
        results = [e.segmentation for e in events if isinstance(e, FrameResult)]
        written = dataset.save_prediction(name, results[0], replace_unopened=True)
        if written is not None:
            log.record_segmented(name, label)
        yield done, len(names), name if written is not None else ""
