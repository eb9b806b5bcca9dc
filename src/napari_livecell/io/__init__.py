"""npe2 readers, writers and sample data: thin adapters over the core and :mod:`napari_livecell.layers`."""
