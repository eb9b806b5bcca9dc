"""The public Python API: what a script needs, without napari.

Load a model, segment an image or a stack, read and write COCO and YOLO-seg,
measure cells, track them over time and score predictions. Every function
here is a thin, typed door into :mod:`napari_livecell.core`, which the napari
docks, the command line and the HTTP service run too: the same image gives
the same cells whichever door it goes through. Modules under ``core`` are
the implementation and may change between versions; this module is what
stays.

Examples
--------
>>> from napari_livecell import api
>>> from napari_livecell.core.training.synthetic import synthesize_image
>>> sample = synthesize_image(seed=0, n_cells=12, shape=(256, 256))
>>> cells = api.segment(sample.image)
>>> cells.labels.shape
(256, 256)
>>> 6 <= cells.n_cells <= 20
True
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_livecell.core.inference.predict import PredictSettings
from napari_livecell.core.models.model import LoadedModel
from napari_livecell.core.segmentation import Segmentation

if TYPE_CHECKING:
    from napari_livecell.core.analysis.measure import Measurements
    from napari_livecell.core.tracking.track import TrackingResult

__all__ = [
    "LoadedModel",
    "PredictSettings",
    "Segmentation",
    "evaluate",
    "load_model",
    "measure",
    "read_coco",
    "read_yolo",
    "segment",
    "segment_stack",
    "track",
    "write_coco",
    "write_yolo",
]

PathLike = str | os.PathLike


def load_model(
    weights: PathLike | None = None, *, device: str | None = None, runtime: str | None = None
) -> LoadedModel:
    """Load a YOLO segmentation model (once; later calls come from a cache).

    Parameters
    ----------
    weights : str or os.PathLike, optional
        ``.pt``, ``.onnx`` or ``.torchscript`` weights; the shipped default
        model when omitted; ``triton+http://HOST:PORT/MODEL`` for a model
        served by Triton.
    device : str, optional
        ``"auto"`` (CUDA, then MPS, then the CPU), ``"cpu"``, ``"cuda:N"``, ``"mps"``.
    runtime : str, optional
        What runs the forward pass: ``"onnxruntime"``, ``"openvino"``,
        ``"openvino-int8"``, ``"torch"`` or ``"auto"`` (docs/runtime.md);
        ``None``: ``torch`` where it is installed, else ``auto``.

    Returns
    -------
    LoadedModel
        The model, its class names, device and pixel size.

    Raises
    ------
    napari_livecell.core.errors.ModelError
        A missing, unreadable or non-segmentation model file, an unknown
        device or runtime.

    Examples
    --------
    >>> from napari_livecell import api
    >>> model = api.load_model(device="cpu")
    >>> model.class_names
    {0: 'cell'}
    >>> model.device
    'cpu'
    """
    from napari_livecell.core.models.model import load_model as load

    return load(weights, device=device, runtime=runtime)


def _run(
    image: Any,
    model: LoadedModel | PathLike | None,
    settings: PredictSettings | None,
    pixel_size: float | None,
    rgb: bool | None,
    tile: bool | None,
) -> tuple[tuple[int, ...], list[Segmentation]]:
    """Every frame of ``image`` through the core's run; its leading shape and results in C order."""
    from napari_livecell.core.inference.run import Backend, FrameResult, RunStarted, iter_segment

    if isinstance(model, LoadedModel):
        if not model.path.is_file():
            raise ValueError(f"{model.name}: pass a served model by its address (triton+http://...)")
        # the same file, device and runtime: load_model's cache returns this very model
        backend = Backend(weights=str(model.path), device=model.device, tile=tile, runtime=model.runtime)
    else:
        backend = Backend(weights=None if model is None else os.fspath(model), tile=tile)
    events = iter_segment(image, backend, settings, rgb, pixel_size, "pixel_size argument")
    started = next(events)
    assert isinstance(started, RunStarted)  # iter_segment's first event
    results = sorted((e for e in events if isinstance(e, FrameResult)), key=lambda e: e.number)
    return started.leading, [result.segmentation for result in results]


def segment(
    image: Any,
    model: LoadedModel | PathLike | None = None,
    *,
    settings: PredictSettings | None = None,
    pixel_size: float | None = None,
    rgb: bool | None = None,
    tile: bool | None = None,
) -> Segmentation:
    """Segment the cells of one frame.

    Every step the napari dock and the CLI take is taken: the frame's
    modality (phase contrast or fluorescence) is decided and the frame
    inverted for the model when needed, a frame whose pixel size differs
    from the model's is resampled to it and its cells mapped back, and a
    frame larger than the network input is segmented in overlapping tiles.

    Parameters
    ----------
    image : array-like
        ``(H, W)`` gray or ``(H, W, 3|4)`` colour, any integer or float dtype.
    model : LoadedModel, str or os.PathLike, optional
        A model loaded from a file, weights, a ``triton+http://HOST:PORT/MODEL``
        address or a ``napari-livecell serve`` URL; the shipped default model when omitted.
    settings : PredictSettings, optional
        Confidence and NMS thresholds, network image size, modality.
    pixel_size : float, optional
        Micrometres per pixel of the image; ``None``: unknown, not resampled.
    rgb : bool, optional
        Whether the last axis holds colour (guessed when omitted).
    tile : bool, optional
        Overlapping tiles: ``None`` when the frame needs them, or always / never.

    Returns
    -------
    Segmentation
        Labels (``(H, W)`` int32, cells ``1..N``), scores, classes and outlines.

    Raises
    ------
    ValueError
        A stack (use :func:`segment_stack`), an empty or non-numeric image,
        a bad setting or pixel size.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_livecell import api
    >>> from napari_livecell.core.training.synthetic import synthesize_image
    >>> sample = synthesize_image(seed=1, n_cells=10, shape=(256, 256))
    >>> cells = api.segment(sample.image, settings=api.PredictSettings(conf=0.5))
    >>> bool(np.all(cells.scores >= 0.5))
    True
    >>> len(cells.polygons) == cells.n_cells
    True
    """
    leading, results = _run(image, model, settings, pixel_size, rgb, tile)
    if leading:
        raise ValueError(f"segment takes one frame; this image has leading axes {leading}: use segment_stack")
    return results[0]


def segment_stack(
    stack: Any,
    model: LoadedModel | PathLike | None = None,
    *,
    settings: PredictSettings | None = None,
    pixel_size: float | None = None,
    rgb: bool | None = None,
    tile: bool | None = None,
) -> list[Segmentation]:
    """Segment every frame of a stack, one frame at a time (a dask stack is read lazily).

    Parameters
    ----------
    stack : array-like
        ``(..., H, W)`` or ``(..., H, W, 3|4)``, numpy or dask; a single frame
        gives a list of one.
    model, settings, pixel_size, rgb, tile
        As for :func:`segment`.

    Returns
    -------
    list of Segmentation
        One per frame, in C order of the leading axes; each frame's ids start at 1.

    Examples
    --------
    >>> from napari_livecell import api
    >>> from napari_livecell.core.training.synthetic import synthesize_timelapse
    >>> movie = synthesize_timelapse(seed=0, n_frames=2, n_cells=8, shape=(192, 192))
    >>> frames = api.segment_stack(movie.image)
    >>> len(frames), frames[0].labels.shape
    (2, (192, 192))
    """
    _, results = _run(stack, model, settings, pixel_size, rgb, tile)
    return results


def write_coco(
    path: PathLike,
    images: Mapping[str, Segmentation] | Sequence[Segmentation],
    *,
    with_scores: bool = True,
) -> Path:
    """Write segmentations as one COCO json (LIVECell's layout), atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The json to write.
    images : mapping of str to Segmentation, or sequence of Segmentation
        File name -> its cells; a sequence is written as frames
        ``frame_0000.tif``, ``frame_0001.tif``...
    with_scores : bool
        Write each cell's ``score`` (a prediction file; ``False`` for ground truth).

    Returns
    -------
    pathlib.Path
        The file written.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from napari_livecell import api
    >>> from napari_livecell.core.training.synthetic import synthesize_image
    >>> truth = api.Segmentation.from_labels(synthesize_image(seed=2, n_cells=5, shape=(128, 128)).labels)
    >>> folder = Path(tempfile.mkdtemp())
    >>> written = api.write_coco(folder / "truth.json", {"a.tif": truth}, with_scores=False)
    >>> api.read_coco(written)["a.tif"].n_cells == truth.n_cells
    True
    """
    from napari_livecell.core.formats.coco import CocoImage, build_coco
    from napari_livecell.core.formats.coco import write_coco as write

    named = (
        images.items()
        if isinstance(images, Mapping)
        else ((f"frame_{index:04d}.tif", segmentation) for index, segmentation in enumerate(images))
    )
    entries = [
        CocoImage(image_id, str(name), segmentation) for image_id, (name, segmentation) in enumerate(named, 1)
    ]
    return write(path, build_coco(entries, with_scores=with_scores))


def read_coco(path: PathLike) -> dict[str, Segmentation]:
    """Read a COCO json (list- or dict-style, LIVECell's too) into segmentations.

    Parameters
    ----------
    path : str or os.PathLike
        The json.

    Returns
    -------
    dict of str to Segmentation
        Image file name -> its cells, in the file's order; cells in
        annotation order, scores 1.0 where the file has none.

    Raises
    ------
    napari_livecell.core.formats.coco.CocoFormatError
        A json that is not COCO, an image without its size, a malformed annotation.

    Examples
    --------
    See :func:`write_coco`.
    """
    from napari_livecell.core.formats.coco import (
        annotations_by_image,
        annotations_to_labels,
        check_image_entry,
        load_coco,
    )

    coco = load_coco(path)
    source = Path(path).name
    grouped = annotations_by_image(coco)
    names = {int(c["id"]) - 1: str(c["name"]) for c in coco.get("categories", [])} or {0: "cell"}
    read: dict[str, Segmentation] = {}
    for entry in coco["images"]:
        height, width = check_image_entry(entry, source)
        annotations = grouped.get(entry["id"], [])
        labels = annotations_to_labels(annotations, height, width)
        scores = np.array([float(a.get("score", 1.0)) for a in annotations], dtype=np.float32)
        classes = np.array([int(a.get("category_id", 1)) - 1 for a in annotations], dtype=np.int64)
        read[str(entry["file_name"])] = Segmentation.from_labels(labels, scores, classes, names)
    return read


def write_yolo(path: PathLike, segmentation: Segmentation) -> Path:
    """Write one frame's cells as a YOLO-seg label file (normalised polygons), atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.txt`` to write (Ultralytics expects it under ``labels/`` beside ``images/``).
    segmentation : Segmentation
        The cells; each line is ``class x1 y1 x2 y2 ...``.

    Returns
    -------
    pathlib.Path
        The file written.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from napari_livecell import api
    >>> from napari_livecell.core.training.synthetic import synthesize_image
    >>> cells = api.Segmentation.from_labels(synthesize_image(seed=3, n_cells=6, shape=(128, 128)).labels)
    >>> txt = api.write_yolo(Path(tempfile.mkdtemp()) / "a.txt", cells)
    >>> api.read_yolo(txt, height=128, width=128).n_cells == cells.n_cells
    True
    """
    from napari_livecell.core.formats.yolo import write_yolo_txt

    return write_yolo_txt(path, segmentation.labels, segmentation.classes)


def read_yolo(
    path: PathLike, height: int, width: int, class_names: dict[int, str] | None = None
) -> Segmentation:
    """Read a YOLO-seg label file, rasterised as Ultralytics' loader does.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.txt`` (one cell a line: ``class x1 y1 x2 y2 ...``, normalised to 0..1).
    height, width : int
        The image's size in pixels.
    class_names : dict of int to str, optional
        Class id -> name (a dataset's ``data.yaml`` ``names``); classes beyond it are an error.

    Returns
    -------
    Segmentation
        Cells ``1..N`` in file order (earlier cells on top), scores 1.0.

    Raises
    ------
    napari_livecell.core.formats.yolo.YoloFormatError
        A malformed line, a box instead of a polygon, an unknown class.

    Examples
    --------
    See :func:`write_yolo`.
    """
    from napari_livecell.core.formats.yolo import parse_yolo_lines, yolo_to_labels

    source = Path(path)
    n_classes = len(class_names) if class_names else None
    cells = parse_yolo_lines(source.read_text(), source.name, n_classes)
    labels, classes = yolo_to_labels(cells, height, width)
    return Segmentation.from_labels(labels, classes=classes, class_names=class_names)


def measure(labels: Any, image: Any = None, *, pixel_size_um: float | None = None) -> Measurements:
    """Measure every cell of a label image or stack, and each frame's summary.

    Parameters
    ----------
    labels : array-like
        ``(H, W)`` or ``(T, H, W)`` integer labels, 0 background (numpy or dask).
    image : array-like, optional
        The intensity image of the same shape, for the intensity columns.
    pixel_size_um : float, optional
        Micrometres per pixel: areas in um^2, lengths in um; pixels otherwise.

    Returns
    -------
    Measurements
        ``cells`` (one row per cell: area, perimeter, equivalent diameter,
        eccentricity, solidity, intensities, centroid) and ``summary`` (one
        row per frame: cell count, confluence, mean area); docs/measurements.md.

    Examples
    --------
    >>> from napari_livecell import api
    >>> from napari_livecell.core.training.synthetic import synthesize_image
    >>> sample = synthesize_image(seed=4, n_cells=7, shape=(128, 128))
    >>> result = api.measure(sample.labels, sample.image, pixel_size_um=0.5)
    >>> len(result.cells) == int(sample.labels.max())
    True
    >>> int(result.summary["cell_count"].iloc[0]) == len(result.cells)
    True
    """
    from napari_livecell.core.analysis.measure import measure_cells

    return measure_cells(labels, image, pixel_size_um)


def track(
    labels: Any,
    *,
    max_distance: float | None = None,
    max_gap: int = 1,
    divisions: bool = True,
) -> TrackingResult:
    """Link the cells of a segmented time-lapse into tracks with lineage.

    Parameters
    ----------
    labels : array-like
        ``(T, H, W)`` integer labels; ids need not be related between frames
        (numpy or dask, read one frame at a time).
    max_distance : float, optional
        Farthest a cell may move between frames, in pixels (default: from the cells' size).
    max_gap : int
        Frames a cell may be missed and still keep its track.
    divisions : bool
        Find divisions (a mother and its daughters).

    Returns
    -------
    TrackingResult
        ``labels`` relabelled so that a cell keeps its track id, ``table``
        (napari Tracks data), ``graph`` (daughter -> mother) and per-track
        ``features``; docs/tracking.md.

    Examples
    --------
    >>> from napari_livecell import api
    >>> from napari_livecell.core.training.synthetic import synthesize_timelapse
    >>> movie = synthesize_timelapse(seed=0, n_frames=4, n_cells=6, shape=(128, 128))
    >>> tracks = api.track(movie.labels)
    >>> tracks.labels.shape == movie.labels.shape
    True
    >>> sorted(tracks.table.columns[:4])
    ['t', 'track_id', 'x', 'y']
    """
    from napari_livecell.core.tracking.track import track_cells

    return track_cells(labels, max_distance=max_distance, max_gap=max_gap, divisions=divisions)


def evaluate(ground_truth: PathLike | dict, predictions: PathLike | dict | list) -> dict[str, Any]:
    """Box and mask AP of predictions against ground truth (pycocotools, LIVECell's protocol).

    Parameters
    ----------
    ground_truth : str, os.PathLike or dict
        A COCO json (path or loaded).
    predictions : str, os.PathLike, dict or list
        A COCO json whose annotations carry ``score`` (as :func:`write_coco`
        writes), or a COCO results list.

    Returns
    -------
    dict
        ``{"segm": {...}, "bbox": {...}, "settings": {...}}``: ``AP``,
        ``AP50``, ``AP75`` and the size ranges as fractions (maxDets 2000,
        LIVECell's area ranges; docs/evaluation.md).

    Raises
    ------
    napari_livecell.core.formats.coco.CocoFormatError
        Empty ground truth, predictions for images the ground truth does not have.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from napari_livecell import api
    >>> from napari_livecell.core.training.synthetic import synthesize_image
    >>> sample = synthesize_image(seed=5, n_cells=12, shape=(256, 256))
    >>> folder = Path(tempfile.mkdtemp())
    >>> truth = api.write_coco(
    ...     folder / "truth.json", {"a.tif": api.Segmentation.from_labels(sample.labels)}, with_scores=False
    ... )
    >>> found = api.write_coco(folder / "found.json", {"a.tif": api.segment(sample.image)})
    >>> scores = api.evaluate(truth, found)
    >>> scores["segm"]["AP50"] > 0.5
    True
    """
    from napari_livecell.core.analysis.evaluate import evaluate as score

    return score(ground_truth, predictions)
