"""What the network sees of a frame: its 8-bit conversion, BGR layout, modality and polarity.

Decided once per frame and applied window by window (a tiled frame is never
converted whole); kept apart from :mod:`.predict`, which runs the network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .network_input import gray_histogram, gray_to_bgr

NORMALIZE_PERCENTILES = (0.1, 99.9)
# frames above this many pixels take their percentiles from a strided sample (uint8_scale)
PERCENTILE_SAMPLE_PIXELS = 4096 * 4096
CONVERT_BLOCK_PIXELS = 1 << 20  # float temporaries of a conversion: one block of this many values


class InputError(ValueError):
    """An image that cannot be segmented, with the reason in the message."""


class ModalitySetting(Protocol):
    """What :func:`frame_polarity` reads of a run's settings (:class:`~.predict.PredictSettings`)."""

    @property
    def modality(self) -> str:
        """``"auto"``, ``"phase"`` or a modality the model names (read only: the settings are frozen)."""


@dataclass(frozen=True)
class Uint8Scale:
    """How one frame's values become 8-bit: decided once for the frame, applied window by window.

    Deciding from the whole frame and converting only the window at hand keeps
    a tiled frame's memory at the image plus one window (a whole-frame float
    copy of a 20000 x 20000 16-bit frame held ~8 GB), with every pixel given
    exactly the value a whole-frame conversion gives it.

    Attributes
    ----------
    kind : str
        ``"uint8"`` (kept as is), ``"bool"`` (0 / 255), ``"linear"`` (the
        ``low``..``high`` stretch) or ``"blank"`` (every pixel 0).
    low, high : float
        The values mapped to 0 and 255 by ``"linear"``.
    """

    kind: str
    low: float = 0.0
    high: float = 0.0

    def apply(self, window: np.ndarray) -> np.ndarray:
        """The window (any part of the frame, any channels) as uint8, converted in row blocks."""
        window = np.asarray(window)
        if self.kind == "uint8":
            return window
        if self.kind == "bool":
            return window.astype(np.uint8) * 255
        if self.kind == "blank":
            return np.zeros(window.shape, dtype=np.uint8)
        converted = np.empty(window.shape, dtype=np.uint8)
        # float temporaries of a block, never of the whole window
        rows = max(1, CONVERT_BLOCK_PIXELS // max(1, math.prod(window.shape[1:])))
        for start in range(0, window.shape[0], rows):
            converted[start : start + rows] = self._stretch(window[start : start + rows])
        return converted

    def _stretch(self, block: np.ndarray) -> np.ndarray:
        values = block.astype(np.float32)
        finite = np.isfinite(values)
        if not finite.all():
            values = np.where(finite, values, np.nan)
        low, high = self.low, self.high
        scaled = (np.nan_to_num(values, nan=low) - low) * (255.0 / (high - low))
        return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)

    def bgr(self, window: np.ndarray) -> np.ndarray:
        """The window as the 3-channel uint8 BGR Ultralytics expects (gray repeated, alpha dropped)."""
        window = np.asarray(window)
        if window.ndim == 2:
            return gray_to_bgr(self.apply(window))
        return np.ascontiguousarray(self.apply(window[:, :, 2::-1]))


def uint8_scale(frame: np.ndarray) -> Uint8Scale:
    """Decide how a frame becomes uint8 (see :func:`to_uint8`), without converting it.

    Frames of more than :data:`PERCENTILE_SAMPLE_PIXELS` pixels take their
    percentiles from an evenly strided sample of about that many pixels:
    exact percentiles of a 400-megapixel frame need float copies of it all,
    and a sample of 16 million pixels places the 0.1th and 99.9th
    percentiles as well for a stretch to 256 levels.

    Parameters
    ----------
    frame : numpy.ndarray
        ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` array of any real dtype.

    Returns
    -------
    Uint8Scale
    """
    frame = np.asarray(frame)
    if frame.dtype == np.uint8:
        return Uint8Scale("uint8")
    if frame.dtype == bool:
        return Uint8Scale("bool")
    if not (np.issubdtype(frame.dtype, np.integer) or np.issubdtype(frame.dtype, np.floating)):
        raise InputError(f"cannot segment an image of dtype {frame.dtype}")
    pixels = frame.shape[0] * frame.shape[1] if frame.ndim >= 2 else frame.size
    step = max(1, math.ceil(math.sqrt(pixels / PERCENTILE_SAMPLE_PIXELS)))
    values = (frame[::step, ::step] if frame.ndim >= 2 else frame).astype(np.float32)
    finite = np.isfinite(values)
    if not finite.all():
        values = np.where(finite, values, np.nan)
    low, high = np.nanpercentile(values, NORMALIZE_PERCENTILES)
    if not np.isfinite(low) or high <= low:
        return Uint8Scale("blank")
    return Uint8Scale("linear", low, high)


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """Scale a 2-D or RGB frame to uint8, the same way for every dtype.

    uint8 frames are returned unchanged (models are trained on them). Other
    integer and float frames are stretched linearly so that the 0.1th and
    99.9th percentiles map to 0 and 255 (a constant frame maps to 0). Ultralytics
    would instead keep only the top byte of uint16 data (12-bit images become
    black) and read floats as 0..255.

    Parameters
    ----------
    frame : numpy.ndarray
        ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` array of any real dtype.

    Returns
    -------
    numpy.ndarray
        uint8 array of the same shape.
    """
    return uint8_scale(frame).apply(frame)


def check_frame_shape(frame: np.ndarray) -> None:
    """Refuse (:class:`InputError`) anything but an ``(H, W)`` or ``(H, W, 3|4)`` frame."""
    if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (3, 4))):
        raise InputError(f"a frame must be (H, W) or (H, W, 3|4), got shape {frame.shape}")


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """Make a 3-channel uint8 BGR frame (what Ultralytics expects) from gray/RGB(A)."""
    frame = np.asarray(frame)
    scale = uint8_scale(frame)
    check_frame_shape(frame)
    return scale.bgr(frame)


def _gray_sample(
    frame: np.ndarray, max_pixels: int = 512 * 512, scale: Uint8Scale | None = None
) -> np.ndarray:
    """The frame as 8-bit gray, every few pixels: enough to judge its histogram.

    ``scale``: the whole frame's conversion to 8 bits (what the network will
    see); by default the sample is stretched by its own percentiles.
    """
    frame = np.asarray(frame)
    step = max(1, math.ceil(math.sqrt(frame.shape[0] * frame.shape[1] / max_pixels)))
    sample = frame[::step, ::step]
    if sample.ndim == 2:
        # the mean of three equal channels is the gray value: skip making them
        return to_uint8(sample) if scale is None else scale.apply(sample)
    sample = to_uint8(sample) if scale is None else scale.bgr(sample)
    if sample.ndim == 3:
        sample = sample[:, :, :3].mean(axis=2).astype(np.uint8)
    return sample


def detect_modality(frame: np.ndarray, *, scale: Uint8Scale | None = None) -> str:
    """Guess from the pixels whether a frame is phase contrast or fluorescence.

    Fluorescence shows bright, sparse objects on a dark background: the
    background is the histogram's peak, close to the dark end of the range,
    and most pixels lie below the middle between it and the brightest
    objects. Phase contrast has its background peak mid-range, with darker
    cell bodies below and brighter halos above. A flat frame has no evidence
    either way and counts as phase contrast.

    Parameters
    ----------
    frame : numpy.ndarray
        ``(H, W)`` or ``(H, W, 3|4)`` frame of any real dtype.
    scale : Uint8Scale, optional
        The frame's own conversion to 8 bits (:func:`uint8_scale`), when
        decided already; otherwise the frame is sampled and the sample stretched.

    Returns
    -------
    str
        ``"fluorescence"`` or ``"phase"``.
    """
    # everything from the 8-bit histogram: np.percentile's partial sort cost ~1.5 ms of a frame
    counts = gray_histogram(_gray_sample(frame, scale=scale))
    low, high = percentiles_of_counts(counts, (0.5, 99.5))
    if high - low < 8:
        return "phase"
    background = int(np.argmax(np.convolve(counts, np.ones(5), mode="same")))
    dark_background = background - low < 0.2 * (high - low)
    # the fraction of pixels brighter than the threshold: values from floor(threshold) + 1 up
    brighter = counts[math.floor((background + high) / 2) + 1 :].sum() / counts.sum()
    bright_sparse = brighter < 0.5
    return "fluorescence" if dark_background and bright_sparse else "phase"


def percentiles_of_counts(counts: np.ndarray, percents: tuple[float, ...]) -> np.ndarray:
    """``np.percentile`` (its default, linear method) of the values whose histogram is ``counts``.

    The same numbers as ``np.percentile(values, percents)``, arithmetic
    included (its index ``(n - 1) q`` and interpolation between the two
    order statistics around it), found from the cumulative histogram.

    Parameters
    ----------
    counts : numpy.ndarray
        ``counts[v]``: how many values equal ``v`` (at least one value in all).
    percents : tuple of float
        Percentiles in 0..100.

    Returns
    -------
    numpy.ndarray
        float64 percentiles.
    """
    n = int(counts.sum())
    quantiles = np.asarray(percents, dtype=np.float64) / 100
    position = (n - 1) * quantiles  # numpy's virtual index, as it computes it
    below = np.floor(position)
    fraction = position - below
    below = np.clip(below, 0, n - 1).astype(np.intp)
    above = np.minimum(below + 1, n - 1)
    cumulative = np.cumsum(counts)
    # the k-th smallest value (0-based) is the first v with more than k values up to it
    lower = np.searchsorted(cumulative, below, side="right").astype(np.float64)
    upper = np.searchsorted(cumulative, above, side="right").astype(np.float64)
    step = upper - lower
    return np.where(fraction >= 0.5, upper - step * (1 - fraction), lower + step * fraction)


@dataclass(frozen=True)
class Polarity:
    """What a frame was taken to be, what the model was trained on, and so whether it is inverted.

    Attributes
    ----------
    image : str
        ``"phase"`` or ``"fluorescence"``.
    model : str
        The modality the model was trained on.
    decided : bool
        True when ``image`` was decided from the pixels (``modality="auto"``).
    """

    image: str
    model: str
    decided: bool = False

    @property
    def inverted(self) -> bool:
        """Whether the frame is inverted before inference (its polarity differs from the model's)."""
        return self.image != self.model

    def describe(self) -> str:
        """One phrase for status lines and logs, e.g. ``fluorescence (auto): inverted for a phase model``."""
        how = " (auto)" if self.decided else ""
        action = f"inverted for a {self.model} model" if self.inverted else "not inverted"
        return f"{self.image}{how}: {action}"

    def as_dict(self) -> dict:
        """The decision as json-ready settings."""
        return {
            "modality": self.image,
            "modality_decided": self.decided,
            "model_modality": self.model,
            "inverted": self.inverted,
        }


def frame_polarity(
    frame: np.ndarray,
    settings: ModalitySetting,
    model_modality: str = "phase",
    *,
    scale: Uint8Scale | None = None,
) -> Polarity:
    """Decide a frame's modality (from its pixels for ``auto``) against the model's.

    Parameters
    ----------
    frame : numpy.ndarray
        The frame to segment.
    settings : PredictSettings
        Its ``modality``: ``auto``, ``phase`` or ``fluorescence``.
    model_modality : str
        What the model was trained on (:attr:`LoadedModel.modality`).
    scale : Uint8Scale, optional
        The frame's conversion to 8 bits, when decided already (see :func:`detect_modality`).

    Returns
    -------
    Polarity
    """
    if settings.modality == "auto":
        return Polarity(detect_modality(frame, scale=scale), model_modality, decided=True)
    return Polarity(settings.modality, model_modality)


def describe_polarities(polarities: list[Polarity | None]) -> str:
    """What each frame was taken to be, e.g. ``fluorescence (auto): inverted for a phase model``.

    A stack whose frames were decided differently lists each decision with
    its number of frames.
    """
    from collections import Counter

    counts = Counter(p.describe() for p in polarities if p is not None)
    if not counts:
        return "modality not reported"
    if len(counts) == 1:
        return next(iter(counts))
    return "; ".join(f"{text} in {n} frame(s)" for text, n in counts.items())


def invert(bgr: np.ndarray) -> np.ndarray:
    """Turn an 8-bit frame's polarity around: bright objects on dark become dark on bright."""
    return 255 - bgr
