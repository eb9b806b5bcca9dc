"""The one frame recipe: an image, its pixel size and modality settings in, its cells out.

Every way of segmenting a frame goes through :class:`FrameRecipe`: a local
run and a Dask task (:mod:`.run`, :mod:`.distributed`), the service, evaluation
against a ground truth, dataset curation and the before/after scores of a
fine-tune. The steps, in order: the frame's polarity (phase contrast or
fluorescence, inverted for a model trained on the other), resampling to the
model's pixel size (and the cells mapped back to the frame's grid), tiling
of frames larger than the network input, and tracing the outlines. A caller
that skipped one of them would find other cells than the CLI does.

Examples
--------
>>> import numpy as np
>>> recipe = FrameRecipe.plan("default", pixel_size=None)  # doctest: +SKIP
>>> frame = recipe.segment(np.zeros((64, 64), np.uint8))  # doctest: +SKIP
>>> frame.segmentation.n_cells, frame.resampling.describe()  # doctest: +SKIP
(0, 'pixel size unknown: not resampled')
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from napari_livecell.core.models.model import LoadedModel
from napari_livecell.core.segmentation import Segmentation

from .frame_input import Polarity, frame_polarity
from .pixel_size import Resampling, plan_resampling, segment_frame_resampled_steps
from .predict import PredictSettings


@dataclass(frozen=True)
class SegmentedFrame:
    """A frame's cells (on its own grid, outlines traced) and what was decided on the way."""

    segmentation: Segmentation
    polarity: Polarity
    resampling: Resampling


@dataclass(frozen=True)
class FrameRecipe:
    """What is decided once for a run's frames: model, settings, tiling and pixel-size plan.

    Attributes
    ----------
    model : LoadedModel
        The model that segments.
    settings : PredictSettings
        Thresholds, network input size and the frames' modality setting.
    resampling : Resampling
        The frames' pixel size against the model's (:func:`.pixel_size.plan_resampling`).
    tile : bool, optional
        Overlapping tiles: ``None`` for frames larger than the network input, or always/never.
    """

    model: LoadedModel
    settings: PredictSettings
    resampling: Resampling
    tile: bool | None = None

    @classmethod
    def plan(
        cls,
        model: LoadedModel | str | os.PathLike | None = None,
        settings: PredictSettings | None = None,
        pixel_size: float | None = None,
        pixel_size_source: str = "",
        tile: bool | None = None,
    ) -> FrameRecipe:
        """The recipe for frames of ``pixel_size`` micrometres per pixel (``None``: unknown).

        Parameters
        ----------
        model : LoadedModel or path, optional
            A loaded model, or weights to load (the shipped default when omitted).
        settings : PredictSettings, optional
            Thresholds, image size and modality (defaults when omitted).
        pixel_size : float, optional
            The frames' micrometres per pixel; unknown: nothing is resampled.
        pixel_size_source : str
            Where ``pixel_size`` came from (``--pixel-size``, ``file metadata``...), for the reports.
        tile : bool, optional
            As :attr:`tile`.

        Raises
        ------
        ValueError
            A pixel size that is not a positive finite number; weights that cannot be loaded.
        """
        from napari_livecell.core.models.model import load_model

        loaded = load_model(model)
        return cls(
            loaded,
            settings or PredictSettings(),
            plan_resampling(pixel_size, loaded, pixel_size_source),
            tile,
        )

    def at_pixel_size(self, pixel_size: float | None, source: str = "") -> FrameRecipe:
        """The recipe for frames of another pixel size (each file of a dataset has its own)."""
        return replace(self, resampling=plan_resampling(pixel_size, self.model, source))

    def polarity(self, frame: np.ndarray) -> Polarity:
        """The frame's modality against the model's (``settings.modality``; ``auto``: from its pixels)."""
        return frame_polarity(frame, self.settings, self.model.modality)

    def steps(
        self, frame: Any, polarity: Polarity | None = None, trace: bool = True
    ) -> Generator[tuple[int, int], None, SegmentedFrame]:
        """Segment one frame, yielding ``(steps done, steps)``; return its :class:`SegmentedFrame`.

        Parameters
        ----------
        frame : array-like
            ``(H, W)`` or ``(H, W, 3|4)`` image of any real dtype.
        polarity : Polarity, optional
            :meth:`polarity` decided already (e.g. in a reader thread).
        trace : bool
            Trace the outlines here (in chunks of cells, reported as the frame's
            last step), so that whoever runs the steps pays for them, not the
            thread that shows the result.

        Yields
        ------
        tuple of int
            Tiles done and tiles of the network's pass, then ``(1, 1)`` after
            each chunk of outlines traced.
        """
        frame = np.asarray(frame)
        if polarity is None:
            polarity = self.polarity(frame)
        result = yield from segment_frame_resampled_steps(
            frame, self.model, self.settings, self.tile, polarity, self.resampling
        )
        if trace:
            for _ in result.trace_steps():
                yield 1, 1  # the frame's tiles are done; its outlines are its last step
        return SegmentedFrame(result, polarity, self.resampling)

    def segment(self, frame: Any, trace: bool = True) -> SegmentedFrame:
        """:meth:`steps` run to the end."""
        from napari_livecell.core.steps import drain

        return drain(self.steps(frame, trace=trace))


def segment_image(
    image: Any,
    model: LoadedModel | str | os.PathLike | None = None,
    settings: PredictSettings | None = None,
    pixel_size: float | None = None,
    pixel_size_source: str = "",
    tile: bool | None = None,
) -> SegmentedFrame:
    """Segment one frame with every step of the recipe (see :class:`FrameRecipe`).

    Parameters
    ----------
    image : array-like
        ``(H, W)`` or ``(H, W, 3|4)`` image of any real dtype.
    model : LoadedModel or path, optional
        A loaded model or weights (the shipped default when omitted).
    settings : PredictSettings, optional
        Thresholds, image size and modality.
    pixel_size : float, optional
        The image's micrometres per pixel (``None``: unknown, not resampled).
    pixel_size_source : str
        Where ``pixel_size`` came from.
    tile : bool, optional
        Overlapping tiles: ``None`` when the frame is larger than the network input.

    Returns
    -------
    SegmentedFrame
        The cells on the image's own grid, with the polarity and resampling decided.
    """
    return FrameRecipe.plan(model, settings, pixel_size, pixel_size_source, tile).segment(image)
