"""The compiled NMS against Ultralytics' own, and its sort against numpy's."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from napari_livecell.core.inference.masks import compiled_nms, non_max_suppression
from napari_livecell.core.inference.network_input import network_tensor
from napari_livecell.core.inference.predict import STRIDE, _pad_with_background
from napari_livecell.core.training.synthetic import synthesize_image

# a few values many times (ties, -0.0 beside 0.0), and any other float32 but NaN
_SCORES = st.one_of(
    st.sampled_from([0.0, -0.0, 0.41, 0.5, 0.9, 1e-40, math.inf, -math.inf]),
    st.floats(allow_nan=False, width=32),
)


@settings(max_examples=300, deadline=None)
@given(arrays(np.float32, st.integers(0, 300), elements=_SCORES))
def test_descending_order_is_numpys_stable_argsort(scores):
    np.testing.assert_array_equal(compiled_nms().descending_order(scores), np.argsort(-scores, kind="stable"))


def test_nms_keeps_ultralytics_rows_of_a_dense_frame(default_model):
    import torch
    from ultralytics.utils.nms import non_max_suppression as ultralytics_nms

    frame = synthesize_image(seed=9500, n_cells=500).image
    padded = [STRIDE * math.ceil(side / STRIDE) for side in frame.shape]
    tensor = torch.from_numpy(network_tensor(_pad_with_background(frame, tuple(padded))))
    with torch.inference_mode():
        output = default_model.yolo.model(tensor)
    # PyTorch's segmentation head: ((prediction, prototypes), its parts)
    prediction = output[0][0][0] if isinstance(output[0], tuple | list) else output[0][0]
    n_classes = len(default_model.class_names)
    (expected,) = ultralytics_nms(prediction[None], 0.4, 0.6, nc=n_classes, max_det=3000)
    rows = non_max_suppression(prediction.numpy(), n_classes, 0.4, 0.6, 3000)
    assert len(rows) > 400
    np.testing.assert_array_equal(rows, expected.numpy())
