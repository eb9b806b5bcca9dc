"""The garbage collector hold that keeps GUI pauses short during runs."""

import gc

import pytest

from napari_livecell._qt.gc_hold import collector_held, hold_collector, release_collector


@pytest.fixture
def unfrozen(collector_unfrozen):
    assert gc.get_freeze_count() == 0


def test_holds_are_counted_and_the_last_release_unfreezes(unfrozen):
    hold_collector()
    hold_collector()  # e.g. Segment cells and Train on corrections at once
    assert collector_held() and gc.get_freeze_count() > 0
    release_collector()
    assert gc.get_freeze_count() > 0, "one run still holds it"
    release_collector()
    assert not collector_held() and gc.get_freeze_count() == 0
    release_collector()  # an extra release is harmless
    assert gc.get_freeze_count() == 0


def test_objects_made_during_a_hold_are_still_collected(unfrozen):
    class Node:
        pass

    hold_collector()
    try:
        cycle = Node()
        cycle.self = cycle
        del cycle
        assert gc.collect() >= 1
    finally:
        release_collector()


def test_someone_elses_freeze_is_left_alone(unfrozen):
    gc.freeze()
    hold_collector()
    release_collector()
    assert gc.get_freeze_count() > 0, "their frozen objects stay frozen"
