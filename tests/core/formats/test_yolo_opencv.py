"""YOLO labels written and read without OpenCV equal what OpenCV (Ultralytics' loader) makes of them.

Outlines as ``cv2.findContours`` (``RETR_EXTERNAL``, largest part) and
polygons filled as ``cv2.fillPoly``, pixel for pixel: on random masks (parts,
holes, pinches), random polygons (self-crossing, leaving the image) and
star-shaped ones normalised as YOLO files hold them. OpenCV comes with the
``train`` extra; the base install runs the compiled kernels alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_livecell.core._compiled import kernels
from napari_livecell.core.formats.yolo import (
    _cell_contour,
    labels_to_yolo_lines,
    parse_yolo_lines,
    yolo_to_labels,
)
from napari_livecell.core.training.synthetic import synthesize_image

cv2 = pytest.importorskip("cv2")


def _opencv_contour(mask: np.ndarray) -> np.ndarray | None:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(float)
    while len(contour) < 3:
        contour = np.vstack([contour, contour[-1:]])
    return contour


def test_cell_contours_equal_opencvs_largest_external_contour():
    rng = np.random.default_rng(0)
    for trial in range(400):
        shape = (int(rng.integers(1, 30)), int(rng.integers(1, 30)))
        noise = rng.random(shape) < rng.uniform(0.1, 0.7)
        mask = ndi.binary_opening(noise) if trial % 3 == 0 else noise
        got, expected = _cell_contour(mask), _opencv_contour(mask)
        if expected is None:
            assert got is None
        else:
            np.testing.assert_array_equal(got, expected, err_msg=f"trial {trial}")


def _random_polygons(rng, count):
    for trial in range(count):
        if trial % 3 == 0:  # anything: crossing edges, vertices outside the image
            yield rng.integers(-5, 60, (int(rng.integers(3, 12)), 2)), 55
        else:  # star-shaped, normalised and truncated as a YOLO file is read
            n = int(rng.integers(3, 40))
            centre, radii = rng.uniform(0, 60, 2), rng.uniform(1, 15, n)
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            points = centre + radii[:, None] * np.column_stack([np.cos(angles), np.sin(angles)])
            yield (points.clip(0, 60.6) / 60 * 60).astype(np.int32), 60


def test_polygons_fill_as_opencvs_fillpoly():
    fill_polygon = kernels("formats._fill_kernel").fill_polygon
    for points, side in _random_polygons(np.random.default_rng(1), 1500):
        expected = np.zeros((side, side), np.uint8)
        cv2.fillPoly(expected, [points.astype(np.int32)], 1)
        got = np.zeros((side, side), np.uint8)
        fill_polygon(got, points[:, 0].astype(np.int64), points[:, 1].astype(np.int64))
        np.testing.assert_array_equal(got, expected, err_msg=str(points.tolist()))


def test_yolo_labels_read_back_as_opencv_reads_them():
    labels = synthesize_image(seed=3, n_cells=300).labels
    height, width = labels.shape
    cells = parse_yolo_lines("\n".join(labels_to_yolo_lines(labels)))
    got, _ = yolo_to_labels(cells, height, width)
    expected = np.zeros((height, width), np.int32)
    mask = np.zeros((height, width), np.uint8)
    for number, (_, points) in enumerate(cells, start=1):
        mask[:] = 0
        cv2.fillPoly(mask, [(points * [width, height]).astype(np.int32)], 1)
        expected[(mask > 0) & (expected == 0)] = number
    np.testing.assert_array_equal(got, expected)
