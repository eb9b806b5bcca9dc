"""Changing live result layers in place (napari imported lazily, inside functions)."""

from __future__ import annotations

import numpy as np

from napari_livecell._layers import RESULT_KEY


def warm_up_layer_code() -> None:
    """Build throwaway layers so that napari's lazy imports happen now, not after a run."""
    from napari.layers import Labels, Shapes

    Labels(np.zeros((4, 4), np.int32), features={"index": [1], "score": [1.0]})
    Shapes([np.array([[0, 0], [0, 2], [2, 2]], float)], shape_type="polygon")


def layer_kind(layer) -> str:
    """``"labels"``, ``"shapes"`` or ``""`` for any other layer."""
    from napari.layers import Labels, Shapes

    return "labels" if isinstance(layer, Labels) else "shapes" if isinstance(layer, Shapes) else ""


def update_layer(layer, data, kwargs: dict) -> None:
    """Give an existing result layer new data, features and placement."""
    if layer_kind(layer) == "labels":
        if layer.data.shape != data.shape or not np.array_equal(layer.data, data):
            layer.data = data
    else:
        layer.data = []
        layer.add(
            data,
            shape_type=kwargs["shape_type"],
            edge_color=kwargs["edge_color"],
            face_color=kwargs["face_color"],
            edge_width=kwargs["edge_width"],
        )
    layer.features = kwargs["features"]
    layer.scale = kwargs["scale"]
    layer.translate = kwargs["translate"]
    layer.metadata = kwargs["metadata"]


def mark_edited(layer) -> None:
    """Flag a result layer as edited, so that a re-run asks before replacing it."""
    layer.metadata.setdefault(RESULT_KEY, {})["edited"] = True
