"""OpenCV's rings of a mask, as :func:`napari_livecell.core.segmentation.mask_rings` traced them with OpenCV.

The mask doubled, ``RETR_CCOMP``, ``CHAIN_APPROX_SIMPLE``, a quarter pixel
inside the pixel edges: the reference the compiled tracer is compared with
(OpenCV comes with the ``train`` extra, not the base install).
"""

from __future__ import annotations

import numpy as np


def opencv_rings(mask: np.ndarray, offset: tuple[int, int]) -> tuple[list[np.ndarray], list[bool]]:
    # lazily: collecting the tests must not need OpenCV
    import cv2

    doubled = cv2.resize(mask.astype(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, hierarchy = cv2.findContours(doubled, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return [], []
    rings = [c.reshape(-1, 2) * 0.5 + (0.25 + offset[1], 0.25 + offset[0]) for c in contours]
    rings = [np.vstack([r, np.repeat(r[-1:], 3 - len(r), axis=0)]) if len(r) < 3 else r for r in rings]
    return rings, (hierarchy[0][:, 3] != -1).tolist()
