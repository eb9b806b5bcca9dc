"""Cell tracking.

Per-frame cells, linking with gaps and divisions, relabelling, lineage, accuracy, flags, track tables.
"""
