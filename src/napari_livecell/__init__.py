"""napari-livecell: segment and proofread cells in phase-contrast images with YOLO-seg."""

__version__ = "0.1.0"
