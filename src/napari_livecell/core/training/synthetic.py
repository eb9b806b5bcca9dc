"""Synthetic LIVECell-like phase-contrast images with exact instance labels.

The images imitate SkBr3 cultures as LIVECell shows them: a mid-gray background
with uneven illumination and noise, dark cell bodies with a darker rim and a
bright halo, round to elongated irregular shapes, touching cells and clusters,
from sparse to confluent. Every image is *rendered from* its label image, so
the labels are exact by construction.

Examples
--------
>>> from napari_livecell.core.training.synthetic import synthesize_image
>>> sample = synthesize_image(seed=0, n_cells=50)
>>> sample.image.shape, sample.image.dtype, int(sample.labels.max()) > 30
((520, 704), dtype('uint8'), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import polygon as draw_polygon

LIVECELL_SHAPE = (520, 704)  # (height, width) of every LIVECell image
MIN_CELL_AREA = 40  # pixels; smaller fragments are not kept as cells
_OUTLINE_POINTS = 48
_N_HARMONICS = 4
# higher orders wobble less, or every cell looks like a star
_HARMONIC_SCALE = (0.09 / np.arange(1, _N_HARMONICS + 1))[:, None]


@dataclass
class SyntheticImage:
    """One synthetic frame (or stack of frames) and its exact instance labels.

    Attributes
    ----------
    image : numpy.ndarray
        uint8 grayscale image, ``(H, W)`` or ``(T, H, W)``.
    labels : numpy.ndarray
        int32 label image of the same shape; 0 is background, cells are 1..N
        per frame.
    track_labels : numpy.ndarray or None
        Time-lapses only: ``(T, H, W)`` int32 ground-truth track ids. A cell
        keeps its id in every frame; each daughter of a division gets a new id.
    lineage : numpy.ndarray or None
        Time-lapses only: ``(N, 4)`` int64 table ``id, first_frame,
        last_frame, parent`` (parent 0 = none), as in the Cell Tracking
        Challenge's ``man_track.txt``.
    """

    image: np.ndarray
    labels: np.ndarray
    track_labels: np.ndarray | None = None
    lineage: np.ndarray | None = None


@dataclass
class _Cell:
    center: np.ndarray  # (row, col)
    radius: float
    elongation: float
    angle: float
    harmonics: np.ndarray  # (_N_HARMONICS, 2): cos/sin amplitudes of orders 2..
    darkness: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    # ground-truth lineage; 0 = not yet given an id (a daughter just born)
    track_id: int = 0
    parent: int = 0

    def outline(self) -> np.ndarray:
        """Closed outline as ``(N, 2)`` (row, col) points."""
        theta = np.linspace(0, 2 * np.pi, _OUTLINE_POINTS, endpoint=False)
        orders = np.arange(2, 2 + _N_HARMONICS)[:, None]
        wobble = (
            self.harmonics[:, :1] * np.cos(orders * theta) + self.harmonics[:, 1:] * np.sin(orders * theta)
        ).sum(axis=0)
        radius = self.radius * np.clip(1.0 + wobble, 0.5, 1.6)
        stretch = math.sqrt(self.elongation)
        x = radius * np.cos(theta) * stretch
        y = radius * np.sin(theta) / stretch
        cos_a, sin_a = math.cos(self.angle), math.sin(self.angle)
        rows = self.center[0] + x * sin_a + y * cos_a
        cols = self.center[1] + x * cos_a - y * sin_a
        return np.stack([rows, cols], axis=1)


@dataclass(frozen=True)
class CellLook:
    """How a synthetic cell type looks.

    Attributes
    ----------
    radius : tuple of float
        Range of the mean cell radius in pixels.
    elongation : float
        Scale of the gamma-distributed elongation beyond 1 (0 = round).
    darkness : tuple of float
        Range of the body's gray level below the background; negative values
        give cells brighter than the background. For ``fluorescence``, how
        far above the dark background a nucleus shines (as a negative number).
    modality : {"phase", "fluorescence"}
        How the cells are imaged: phase contrast (gray background, dark
        bodies, bright halo) or fluorescence (bright stained nuclei on a dark
        background, with shot noise).
    """

    radius: tuple[float, float] = (8.0, 16.0)
    elongation: float = 0.35
    darkness: tuple[float, float] = (18.0, 45.0)
    modality: str = "phase"


LOOKS: dict[str, CellLook] = {
    # the SkBr3-like look the shipped model was trained on
    "skbr3": CellLook(),
    # large, flat, elongated cells with bodies brighter than the background: a
    # "new cell type" the shipped model has never seen (fine-tuning demonstrations)
    "bright": CellLook(radius=(16.0, 28.0), elongation=0.6, darkness=(-35.0, -15.0)),
    # stained nuclei: bright, rounder, on a dark background. The geometry stays
    # close to skbr3 so that the same cells can be compared across modalities
    "fluorescence": CellLook(
        radius=(7.0, 13.0), elongation=0.2, darkness=(-190.0, -70.0), modality="fluorescence"
    ),
}


def _random_cell(rng: np.random.Generator, center: np.ndarray, look: CellLook) -> _Cell:
    return _Cell(
        center=np.asarray(center, dtype=float),
        radius=float(rng.uniform(*look.radius)),
        elongation=float(1.0 + rng.gamma(1.5, look.elongation)),
        angle=float(rng.uniform(0, np.pi)),
        harmonics=rng.normal(0, 1, size=(_N_HARMONICS, 2)) * _HARMONIC_SCALE,
        darkness=float(rng.uniform(*look.darkness)),
        velocity=rng.normal(0, 0.6, size=2),
    )


def _paint(labels: np.ndarray, cell: _Cell, label: int, min_visible: float) -> bool:
    """Paint ``cell`` into the free pixels of ``labels``; undo if too hidden.

    Earlier cells keep their pixels, so touching cells get flattened borders
    as in a real culture. Only the largest visible part of the cell is kept.
    """
    outline = cell.outline()
    rr, cc = draw_polygon(outline[:, 0], outline[:, 1], shape=labels.shape)
    if rr.size < MIN_CELL_AREA:
        return False
    free = labels[rr, cc] == 0
    if free.sum() < max(MIN_CELL_AREA, min_visible * rr.size):
        return False
    rr, cc = rr[free], cc[free]
    r0, c0 = rr.min(), cc.min()
    local = np.zeros((rr.max() - r0 + 1, cc.max() - c0 + 1), dtype=bool)
    local[rr - r0, cc - c0] = True
    parts, n_parts = ndi.label(local)
    if n_parts > 1:
        sizes = np.bincount(parts.ravel())[1:]
        keep = parts[rr - r0, cc - c0] == (np.argmax(sizes) + 1)
        rr, cc = rr[keep], cc[keep]
        if rr.size < MIN_CELL_AREA:
            return False
    labels[rr, cc] = label
    return True


def _place_cells(
    rng: np.random.Generator,
    shape: tuple[int, int],
    n_cells: int,
    cluster_probability: float,
    look: CellLook,
) -> tuple[list[_Cell], np.ndarray]:
    height, width = shape
    labels = np.zeros(shape, dtype=np.int32)
    cells: list[_Cell] = []
    attempts = 0
    while len(cells) < n_cells and attempts < 30 * n_cells:
        attempts += 1
        if cells and rng.random() < cluster_probability:
            anchor = cells[rng.integers(len(cells))]
            direction = rng.uniform(0, 2 * np.pi)
            distance = anchor.radius * rng.uniform(1.4, 2.4)
            center = anchor.center + distance * np.array([math.sin(direction), math.cos(direction)])
        else:
            center = rng.uniform([-10, -10], [height + 10, width + 10])
        cell = _random_cell(rng, center, look)
        if _paint(labels, cell, len(cells) + 1, min_visible=0.8):
            cells.append(cell)
    return cells, labels


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    noise = ndi.gaussian_filter(rng.normal(size=shape), sigma)
    return noise / (noise.std() + 1e-9)


def render_phase_contrast(
    labels: np.ndarray,
    darkness: np.ndarray,
    rng: np.random.Generator,
    background: float | None = None,
    contrast: float | None = None,
) -> np.ndarray:
    """Render a phase-contrast-looking uint8 image from a label image.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(H, W)`` integer label image, 0 = background.
    darkness : numpy.ndarray
        Per-label body darkness in gray levels, indexed by label (entry 0 unused).
    rng : numpy.random.Generator
        Source of illumination, texture and noise.
    background : float, optional
        Mean background gray level; random in 110..145 when omitted.
    contrast : float, optional
        Gain applied around the background; log-uniform in 0.7..2.2 when omitted.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` uint8 image.
    """
    height, width = labels.shape
    if background is None:
        background = rng.uniform(110, 145)
    rows = np.linspace(-1, 1, height)[:, None]
    cols = np.linspace(-1, 1, width)[None, :]
    tilt = rng.normal(0, 6, size=2)
    vignette = rng.uniform(4, 14)
    illumination = (
        background
        + tilt[0] * rows
        + tilt[1] * cols
        - vignette * (rows**2 + cols**2) / 2
        + 3 * _smooth_noise(rng, labels.shape, 40)
    )

    foreground = labels > 0
    between_cells = np.zeros_like(foreground)
    for axis in (0, 1):
        a = np.take(labels, range(labels.shape[axis] - 1), axis=axis)
        b = np.take(labels, range(1, labels.shape[axis]), axis=axis)
        touching = (a != b) & (a > 0) & (b > 0)
        pad = [(0, 0), (0, 0)]
        pad[axis] = (0, 1)
        between_cells |= np.pad(touching, pad)
        pad[axis] = (1, 0)
        between_cells |= np.pad(touching, pad)

    distance_outside = ndi.distance_transform_edt(~foreground)
    distance_inside = ndi.distance_transform_edt(foreground & ~between_cells)
    halo_strength = rng.uniform(28, 45)
    halo = halo_strength * np.exp(-(distance_outside - 1) / 1.8) * ~foreground

    texture = _smooth_noise(rng, labels.shape, 2.0)
    body = -darkness[labels] * (0.75 + 0.25 * texture) * foreground
    rim = -12 * np.exp(-distance_inside / 1.5) * foreground
    # a brighter interior core, as the nucleus region often shows
    core = 8 * np.clip(distance_inside - 4, 0, 6) / 6 * foreground
    membrane = 30 * between_cells

    image = illumination + halo + body + rim + core + membrane
    image = ndi.gaussian_filter(image, 0.8)
    image += rng.normal(0, rng.uniform(3, 6), size=image.shape)
    if contrast is None:
        # microscopes and exposure settings differ: vary contrast around the background
        contrast = math.exp(rng.uniform(math.log(0.7), math.log(2.2)))
    image = background + contrast * (image - background)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def render_fluorescence(
    labels: np.ndarray,
    darkness: np.ndarray,
    rng: np.random.Generator,
    background: float | None = None,
) -> np.ndarray:
    """Render a fluorescence-looking uint8 image (bright nuclei, dark background).

    Parameters
    ----------
    labels : numpy.ndarray
        ``(H, W)`` integer label image, 0 = background.
    darkness : numpy.ndarray
        Per-label gray level below the background, indexed by label; the
        nuclei shine ``-darkness`` above it (entry 0 unused).
    rng : numpy.random.Generator
        Source of illumination, chromatin texture and noise.
    background : float, optional
        Mean background gray level; random in 6..24 when omitted.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` uint8 image.
    """
    if background is None:
        background = rng.uniform(6, 24)
    foreground = labels > 0
    between_cells = np.zeros_like(foreground)
    for axis in (0, 1):
        a = np.take(labels, range(labels.shape[axis] - 1), axis=axis)
        b = np.take(labels, range(1, labels.shape[axis]), axis=axis)
        touching = (a != b) & (a > 0) & (b > 0)
        pad = [(0, 0), (0, 0)]
        pad[axis] = (0, 1)
        between_cells |= np.pad(touching, pad)
    # a stain fills the nucleus and fades at its edge; touching nuclei keep a dim seam
    distance_inside = ndi.distance_transform_edt(foreground & ~between_cells)
    profile = 1.0 - 0.6 * np.exp(-distance_inside / 2.0)
    chromatin = 0.8 + 0.2 * _smooth_noise(rng, labels.shape, 1.5)
    brightness = np.clip(-darkness, 0, None)[labels] * profile * chromatin * foreground
    illumination = background * (1.0 + 0.2 * _smooth_noise(rng, labels.shape, 60))
    image = ndi.gaussian_filter(illumination + brightness, 1.0)
    # photon shot noise, then the camera's read noise
    gain = rng.uniform(0.5, 2.0)
    image = rng.poisson(np.clip(image, 0, None) * gain) / gain + rng.normal(0, 1.5, size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _render(
    look: CellLook,
    labels: np.ndarray,
    darkness: np.ndarray,
    rng: np.random.Generator,
    background: float | None = None,
    contrast: float | None = None,
) -> np.ndarray:
    if look.modality == "fluorescence":
        # the same light source all through a time-lapse; the phase contrast gain has no meaning here
        return render_fluorescence(labels, darkness, rng, None if background is None else background / 8)
    return render_phase_contrast(labels, darkness, rng, background, contrast)


def _look(look: str | CellLook) -> CellLook:
    if isinstance(look, CellLook):
        return look
    try:
        return LOOKS[look]
    except KeyError:
        raise ValueError(f"unknown cell look {look!r}; choose from {', '.join(LOOKS)}") from None


def _darkness_table(cells: list[_Cell]) -> np.ndarray:
    return np.array([0.0] + [cell.darkness for cell in cells])


def synthesize_image(
    seed: int | np.random.Generator = 0,
    n_cells: int | None = None,
    shape: tuple[int, int] = LIVECELL_SHAPE,
    cluster_probability: float | None = None,
    look: str | CellLook = "skbr3",
) -> SyntheticImage:
    """Make one LIVECell-like frame and its exact labels.

    Parameters
    ----------
    seed : int or numpy.random.Generator
        Seed (deterministic output) or generator.
    n_cells : int, optional
        Number of cells to try to place (20..600 is LIVECell's range). Random
        (log-uniform in 20..600) when omitted. Very dense requests may place
        fewer cells when no free space is left.
    shape : tuple of int
        ``(height, width)``; LIVECell's 520 x 704 by default.
    cluster_probability : float, optional
        Chance that a new cell is placed beside an existing one (clusters).
    look : str or CellLook
        Cell type: a name in :data:`LOOKS` or a :class:`CellLook`.

    Returns
    -------
    SyntheticImage
        ``image`` (uint8) and ``labels`` (int32, consecutive ids from 1).
    """
    rng = np.random.default_rng(seed)
    if n_cells is None:
        n_cells = round(math.exp(rng.uniform(math.log(20), math.log(600))))
    if n_cells < 0:
        raise ValueError(f"n_cells must be >= 0, got {n_cells}")
    if cluster_probability is None:
        cluster_probability = float(rng.uniform(0.2, 0.7))
    look = _look(look)
    cells, labels = _place_cells(rng, shape, n_cells, cluster_probability, look)
    image = _render(look, labels, _darkness_table(cells), rng)
    return SyntheticImage(image=image, labels=labels)


def _evolve(rng: np.random.Generator, cells: list[_Cell], shape) -> list[_Cell]:
    """Advance a population one frame: drift, deform, grow, sometimes divide."""
    evolved: list[_Cell] = []
    for cell in cells:
        velocity = 0.8 * cell.velocity + rng.normal(0, 0.5, size=2)
        harmonics = 0.9 * cell.harmonics + 0.3 * _HARMONIC_SCALE * rng.normal(size=cell.harmonics.shape)
        moved = replace(
            cell,
            center=cell.center + velocity,
            velocity=velocity,
            harmonics=harmonics,
            radius=min(cell.radius * rng.uniform(1.0, 1.03), max(cell.radius, 20.0)),
            angle=cell.angle + rng.normal(0, 0.05),
        )
        if moved.radius > 13 and rng.random() < 0.04:
            axis = np.array([math.sin(moved.angle), math.cos(moved.angle)])
            offset = 0.55 * moved.radius * math.sqrt(moved.elongation) * axis
            for sign in (-1, 1):
                evolved.append(
                    replace(
                        moved,
                        center=moved.center + sign * offset,
                        radius=moved.radius / math.sqrt(2),
                        elongation=float(1.0 + rng.gamma(1.5, 0.25)),
                        harmonics=rng.normal(0, 1, size=moved.harmonics.shape) * _HARMONIC_SCALE,
                        velocity=rng.normal(0, 0.6, size=2) + sign * axis * 0.5,
                        track_id=0,
                        parent=moved.track_id,
                    )
                )
        else:
            evolved.append(moved)
    return evolved


def synthesize_timelapse(
    seed: int | np.random.Generator = 0,
    n_frames: int = 5,
    n_cells: int | None = None,
    shape: tuple[int, int] = LIVECELL_SHAPE,
    look: str | CellLook = "skbr3",
) -> SyntheticImage:
    """Make a time-lapse where cells drift, deform, grow and sometimes divide.

    Parameters
    ----------
    seed : int or numpy.random.Generator
        Seed or generator.
    n_frames : int
        Number of frames ``T``.
    n_cells : int, optional
        Cells in the first frame; random (log-uniform 20..300) when omitted.
    shape : tuple of int
        ``(height, width)`` of each frame.
    look : str or CellLook
        Cell type: a name in :data:`LOOKS` or a :class:`CellLook`.

    Returns
    -------
    SyntheticImage
        ``(T, H, W)`` uint8 images and int32 labels (ids consecutive per
        frame), plus the ground truth over time: ``track_labels`` (one id per
        cell for its whole life) and ``lineage`` (``id, first_frame,
        last_frame, parent`` rows). Cells never skip a frame: a cell that is
        crowded out or leaves the field ends its track.
    """
    rng = np.random.default_rng(seed)
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if n_cells is None:
        n_cells = round(math.exp(rng.uniform(math.log(20), math.log(300))))
    look = _look(look)
    cells, _ = _place_cells(rng, shape, n_cells, float(rng.uniform(0.2, 0.6)), look)
    background = float(rng.uniform(110, 145))
    contrast = math.exp(rng.uniform(math.log(0.7), math.log(2.2)))
    images = np.empty((n_frames, *shape), dtype=np.uint8)
    all_labels = np.empty((n_frames, *shape), dtype=np.int32)
    track_labels = np.empty((n_frames, *shape), dtype=np.int32)
    # id -> [first_frame, last_frame, parent]; bookkeeping only, so the random
    # stream (and hence every image and label) is the same as before tracking existed
    lineage: dict[int, list[int]] = {}
    for frame in range(n_frames):
        if frame:
            cells = _evolve(rng, cells, shape)
        labels = np.zeros(shape, dtype=np.int32)
        visible: list[_Cell] = []
        for cell in cells:
            if _paint(labels, cell, len(visible) + 1, min_visible=0.5):
                visible.append(cell)
        cells = visible  # cells that are crowded out or leave the field are gone
        for cell in cells:
            if cell.track_id == 0:
                # a parent that divided was visible in the previous frame, so its id is known
                cell.track_id = len(lineage) + 1
                lineage[cell.track_id] = [frame, frame, cell.parent]
            lineage[cell.track_id][1] = frame
        ids = np.array([0] + [cell.track_id for cell in cells], dtype=np.int32)
        all_labels[frame] = labels
        track_labels[frame] = ids[labels]
        images[frame] = _render(look, labels, _darkness_table(visible), rng, background, contrast)
    table = np.array([[track, *row] for track, row in lineage.items()], dtype=np.int64).reshape(-1, 4)
    return SyntheticImage(image=images, labels=all_labels, track_labels=track_labels, lineage=table)
