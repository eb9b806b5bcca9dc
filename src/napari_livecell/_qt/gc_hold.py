"""Python's garbage collector held back from old objects while a run is in flight.

With torch, Ultralytics and napari loaded the process tracks hundreds of
thousands of objects, and a full collection of them stops every thread, the
GUI thread included: those pauses were the longest GUI stalls of a Segment
cells run (benchmarks/README.md, "GUI heartbeat", has the measurements).
While a run holds the collector, the objects that existed before it are
exempt (``gc.freeze``), so collections scan only what the run made;
afterwards everything is collectable again (``gc.unfreeze``), so nothing is
kept longer than one run.
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_holders = 0
_we_froze = False


def hold_collector() -> None:
    """Exempt the objects that exist now from full collections until released.

    Holds are counted (two widgets may run at once); each must be paired with
    one :func:`release_collector`. If something else in the process froze
    objects already, it owns that policy and this does nothing.
    """
    global _holders, _we_froze
    with _lock:
        if _holders == 0:
            _we_froze = gc.get_freeze_count() == 0
        _holders += 1
        if _we_froze:
            gc.freeze()


def release_collector() -> None:
    """End one hold; the last one makes every object collectable again."""
    global _holders
    with _lock:
        if _holders == 0:
            return
        _holders -= 1
        if _holders == 0 and _we_froze:
            gc.unfreeze()


def collector_held() -> bool:
    """Whether a run holds the collector now."""
    return _holders > 0
