"""Compare to ground truth: colour matched, extra and missed cells; AP50 / AP for the frame."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton

from napari_livecell._qt.docking import fit_dock
from napari_livecell._qt.layer_updates import shown_frame
from napari_livecell.core.analysis.compare import COLORS, compare_frame

if TYPE_CHECKING:
    import napari


class CompareWidget(Container):
    """Ground-truth Labels vs predicted Labels, frame by frame."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._truth = ComboBox(label="truth", choices=self._labels_layers, nullable=True)
        self._predicted = ComboBox(label="prediction", choices=self._labels_layers, nullable=True)
        self._run = PushButton(text="Compare this frame")
        self._result = Label(label="result", value="")
        legend = ", ".join(
            f"{name}: {COLORS[key]}" for key, name in ((1, "matched"), (2, "false positive"), (3, "missed"))
        )
        self.extend([self._truth, self._predicted, self._run, self._result, Label(value=legend)])
        fit_dock(self, [self._result])
        self._run.changed.connect(lambda: self.compare())
        viewer.layers.events.inserted.connect(self._reset)
        viewer.layers.events.removed.connect(self._reset)

    def _reset(self, _event=None) -> None:
        self._truth.reset_choices()
        self._predicted.reset_choices()

    def _labels_layers(self, _widget=None) -> list:
        from napari.layers import Labels

        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Labels)]

    def compare(self):
        """Compare the shown frame; add or update ``<prediction> vs truth``."""
        from napari.utils.colormaps import DirectLabelColormap
        from napari.utils.notifications import show_warning

        truth, predicted = self._truth.value, self._predicted.value
        if truth is None or predicted is None or truth is predicted:
            show_warning("choose a ground-truth and a different prediction Labels layer")
            return None
        # each layer's own frame on show: a truth stack can be compared with a single prediction
        truth_plane = np.asarray(truth.data[shown_frame(self._viewer, truth)])
        predicted_plane = np.asarray(predicted.data[shown_frame(self._viewer, predicted)])
        if truth_plane.shape != predicted_plane.shape:
            show_warning(f"frames differ in size: {truth_plane.shape} vs {predicted_plane.shape}")
            return None
        features = predicted.features
        scores = (
            dict(zip(features["index"], features["score"])) if {"index", "score"} <= set(features) else None
        )
        comparison = compare_frame(truth_plane, predicted_plane, scores)
        name = f"{predicted.name} vs truth"
        colormap = DirectLabelColormap(color_dict={**COLORS, None: "transparent", 0: "transparent"})
        if name in self._viewer.layers:
            layer = self._viewer.layers[name]
            layer.data = comparison.overlay
        else:
            layer = self._viewer.add_labels(
                comparison.overlay,
                name=name,
                colormap=colormap,
                opacity=0.6,
                scale=predicted.scale[-2:],
                translate=predicted.translate[-2:],
            )
        self._result.value = comparison.summary()
        return comparison
