"""Core logic: plain Python and numpy, no Qt or napari imports."""
