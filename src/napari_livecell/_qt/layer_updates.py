"""Changing live result layers in place: data, colours, the frame on show."""

from __future__ import annotations

import numpy as np

from napari_livecell.layers import OUTLINE_EDGE_COLOR, RESULT_KEY, filter_mask


def warm_up_layer_code() -> None:
    """Pay napari's and vispy's one-time costs now, not when a run's layers appear.

    Throwaway layers do napari's lazy imports; a first ``DashAtlas`` fills the
    pattern cache every vispy line visual uses (otherwise filled when the
    first Labels layer of a process is drawn).
    """
    from napari.layers import Labels, Shapes
    from vispy.visuals.line.dash_atlas import DashAtlas

    Labels(np.zeros((4, 4), np.int32), features={"index": [1], "score": [1.0]})
    Shapes([np.array([[0, 0], [0, 2], [2, 2]], float)], shape_type="polygon")
    DashAtlas()


def layer_kind(layer) -> str:
    """``"labels"``, ``"shapes"`` or ``""`` for any other layer."""
    from napari.layers import Labels, Shapes

    return "labels" if isinstance(layer, Labels) else "shapes" if isinstance(layer, Shapes) else ""


def warm_up_text_glyphs(widget) -> None:
    """Rasterize, once per canvas, the glyphs vispy measures every text with.

    napari draws a (blank) text visual with every Shapes layer; the first one
    in a canvas renders 10 glyphs on the GUI thread, which would land on the
    moment a run's outlines appear. The canvas is found
    from a docked ``widget`` through Qt (napari's viewer proxy refuses
    private attributes to plugins); if napari's internals move, only the
    warm-up is lost.
    """
    try:
        from napari._qt.qt_viewer import QtViewer

        qt_viewer = widget.native.window().findChild(QtViewer)
        font_info = qt_viewer.canvas.font_info()
        font = font_info.font_manager.get_font(font_info.face)
        for char in "ÅÉÑŐjgpqy ":  # vispy's ascender/descender probe, and the blank
            font[char]
    except Exception:  # an optimisation only, never worth an error
        pass


def update_layer(layer, data: np.ndarray, kwargs: dict) -> None:
    """Give an existing result Labels layer new data, features and placement.

    Its undo history is cleared: the edits in it were made to the result
    being replaced, and replaying them onto the new one would corrupt it.
    The layer's own colours (before any filter) are kept.
    """
    base_colormap = layer.metadata.get(RESULT_KEY, {}).get("base_colormap")
    current = layer.data
    if current is data:
        layer.refresh()  # the stack it showed while filling in: no copy, no comparison of 1000s of frames
    elif current.shape != data.shape or not np.array_equal(current, data):
        layer.data = data
    clear_undo_history(layer)
    layer.features = kwargs["features"]
    layer.scale = kwargs["scale"]
    layer.translate = kwargs["translate"]
    metadata = dict(kwargs["metadata"])
    if base_colormap is not None:
        metadata[RESULT_KEY] = {**metadata.get(RESULT_KEY, {}), "base_colormap": base_colormap}
    layer.metadata = metadata


def clear_undo_history(layer) -> None:
    """Forget a Labels layer's undo and redo steps (napari has no public call for it).

    The layer a plugin sees is napari's public-only proxy; the history lives
    on the layer itself.
    """
    layer = getattr(layer, "__wrapped__", layer)
    for name in ("_undo_history", "_redo_history"):
        history = getattr(layer, name, None)
        if history is not None and hasattr(history, "clear"):
            history.clear()


def replace_layer(layers, old, new) -> None:
    """Put ``new`` where ``old`` was (or on top), with ``old``'s opacity and blending.

    ``new`` is not made the active layer here: call :func:`activate` one
    event-loop turn later (see :func:`insert_inactive`).
    """
    index = len(layers)
    if old is not None:
        for setting in ("opacity", "blending"):
            setattr(new, setting, getattr(old, setting))
        index = layers.index(old)
        layers.remove(old)
    insert_inactive(layers, index, new)


def insert_inactive(layers, index: int, layer) -> None:
    """Insert ``layer`` into napari's layer list without making it the active layer.

    napari activates every inserted layer, which rebuilds the layer-controls
    panel in the same event-loop turn as the layer's visual: together one of
    the longest GUI-thread steps of a run (benchmarks/README.md, "GUI
    heartbeat"). Splitting them keeps each turn short; :func:`activate` does
    the second half. ``_activate_on_insert`` is napari's own switch for this
    (SelectableEventedList); without it the layer is simply activated at once.
    """
    # a plugin widget's viewer is napari's public-only proxy: the switch is on the list inside
    real_layers = getattr(layers, "__wrapped__", layers)
    switch = getattr(real_layers, "_activate_on_insert", None)
    if switch is None:
        layers.insert(index, layer)
        return
    real_layers._activate_on_insert = False
    try:
        layers.insert(index, layer)
    finally:
        real_layers._activate_on_insert = switch


def run_in_turns(steps: list, pause_ms: int = 5) -> None:
    """Run ``steps`` (callables) one per event-loop turn, each scheduled once the one before is done.

    Scheduling them all at once would not help: when one step takes longer
    than the pause, the later timers are all overdue and Qt runs them back to
    back, before paints and other timers get their turn.
    """
    from qtpy.QtCore import QTimer

    if not steps:
        return
    first, rest = steps[0], steps[1:]

    def run_first() -> None:
        try:
            first()
        finally:
            run_in_turns(rest, pause_ms)

    QTimer.singleShot(pause_ms, run_first)


def activate(layers, layer) -> None:
    """Make ``layer`` the only selected (active) layer, if it is still in the list."""
    if layer in layers:
        layers.selection.active = layer


def mark_edited(layer) -> None:
    """Flag a result layer as edited, so that a re-run asks before replacing it."""
    layer.metadata.setdefault(RESULT_KEY, {})["edited"] = True


def shown_frame(viewer, layer) -> tuple[int, ...]:
    """Leading (stack) index of the frame of ``layer`` the viewer shows now; ``()`` for 2-D."""
    leading = layer.ndim - 2
    if leading <= 0:
        return ()
    point = layer.world_to_data(viewer.dims.point)
    return tuple(round(v) for v in np.asarray(point)[:leading])


def filter_colors(layer, min_score: float, min_area: int, max_area: int):
    """Colours that hide cells failing the filters, for a result Labels or Shapes layer.

    Returns a ``DirectLabelColormap`` for Labels (hidden cells transparent, the
    layer's own colours otherwise; cells painted later use one extra colour)
    or an ``(N, 4)`` edge-colour array for Shapes; ``None`` if nothing applies.
    """
    features = layer.features
    if len(features) == 0:
        return None
    keep = filter_mask(features, min_score, min_area, max_area)
    if layer_kind(layer) == "shapes":
        from napari.utils.colormaps.standardize_color import transform_color

        colors = np.repeat(transform_color(OUTLINE_EDGE_COLOR), len(keep), axis=0)
        colors[~keep, 3] = 0.0
        return colors
    from napari.utils.colormaps import DirectLabelColormap

    base = layer.metadata.setdefault(RESULT_KEY, {}).setdefault("base_colormap", layer.colormap)
    if keep.all():
        return base
    ids = np.array(features["index"], dtype=np.int64)
    colors = np.asarray(base.map(ids), dtype=np.float32)
    colors[~keep, 3] = 0.0
    color_dict: dict[int | None, np.ndarray] = {int(i): c for i, c in zip(ids, colors)}
    color_dict[0] = np.zeros(4, np.float32)
    color_dict[None] = np.array([1.0, 0.0, 1.0, 1.0], np.float32)
    return DirectLabelColormap(color_dict=color_dict)


def same_layer(a, b) -> bool:
    """Whether two layer references are one layer (a plugin's viewer hands out proxies)."""
    return a is not None and b is not None and getattr(a, "__wrapped__", a) is getattr(b, "__wrapped__", b)


def is_result_labels(layer) -> bool:
    """A Labels layer made by Segment cells or read from a COCO/YOLO file (it has our metadata)."""
    return layer_kind(layer) == "labels" and RESULT_KEY in getattr(layer, "metadata", {})


def follow_layers(viewer, combo, prefer, fallback=None):
    """Keep a layer ComboBox in step with the viewer and choose the obvious layer in it.

    The choice starts on the newest layer ``prefer`` accepts (topmost in the
    layer list), else the newest ``fallback`` accepts, else none (a nullable
    box) or napari's first; a layer added later that ``prefer`` accepts becomes the
    choice (a fresh result is what the user wants to work on next); when the
    chosen layer is removed, the newest preferred one takes its place; a
    renamed layer shows its new name. A layer the user chose by hand stays
    chosen while it exists and nothing preferred is added.
    """

    def choose(layer) -> None:
        for value in combo.choices:
            if same_layer(value, layer):
                combo.value = value
                return

    def newest_preferred():
        for accepts in (prefer, fallback):
            chosen = [value for value in combo.choices if value is not None and accepts and accepts(value)]
            if chosen:
                return chosen[-1]
        return None

    def refresh(_event=None) -> None:
        current = combo.value
        combo.reset_choices()
        if current is not None and any(same_layer(value, current) for value in combo.choices):
            choose(current)
            return
        fallback = newest_preferred()
        if fallback is not None:
            choose(fallback)
        elif getattr(combo, "_nullable", False):
            combo.value = None

    def on_inserted(event) -> None:
        layer = event.value
        layer.events.name.connect(refresh)
        refresh()
        if prefer(layer):
            choose(layer)

    losing: list = []

    def on_removing(event) -> None:
        # napari resets a dock's choices on removal before this dock hears of it: note now
        # whether the chosen layer is the one going
        going = viewer.layers[event.index]
        losing[:] = [same_layer(going, combo.value)]

    def on_removed(event) -> None:
        event.value.events.name.disconnect(refresh)
        refresh()
        if losing and losing[0]:
            fallback = newest_preferred()
            if fallback is not None:
                choose(fallback)
        losing.clear()

    for layer in viewer.layers:
        layer.events.name.connect(refresh)
    viewer.layers.events.inserted.connect(on_inserted)
    viewer.layers.events.removing.connect(on_removing)
    viewer.layers.events.removed.connect(on_removed)
    combo.reset_choices()
    start = newest_preferred()
    if start is not None:
        choose(start)
    elif getattr(combo, "_nullable", False):
        combo.value = None
    return refresh
