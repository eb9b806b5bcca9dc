"""Every widget action given bad input shows one readable line in napari; nothing is raised into Qt."""

import numpy as np
import pytest


@pytest.fixture
def docked(make_napari_viewer):
    viewer = make_napari_viewer()
    widgets = {
        name: viewer.window.add_plugin_dock_widget("napari-livecell", name)[1]
        for name in ("Segment cells", "Proofread cells", "Train on corrections", "Compare to ground truth")
    }
    return viewer, widgets


def one_line(messages, expected):
    hits = [text for text in messages if expected in text]
    assert hits, messages
    assert all("\n" not in text and "Traceback" not in text for text in hits)


def test_segment_without_an_image(docked, notifications):
    _, widgets = docked
    assert widgets["Segment cells"].run() is None
    one_line(notifications.messages, "select an image layer first")


def test_segment_a_5d_rgb_stack(docked, notifications):
    viewer, widgets = docked
    viewer.add_image(np.zeros((2, 2, 2, 16, 16, 3), np.uint8), name="rgb5d", rgb=True)
    segment = widgets["Segment cells"]
    segment._image.reset_choices()
    segment._image.value = viewer.layers["rgb5d"]
    assert segment.run() is None
    one_line(notifications.messages, "is a 5-D RGB stack")


@pytest.mark.parametrize(
    ("service", "scheduler", "message"),
    [
        ("ftp://host", "", "'ftp://host' is neither a service URL (http://HOST:PORT) nor a Triton model"),
        ("http://127.0.0.1:9", "tcp://127.0.0.1:9", "either a service URL or a Dask scheduler"),
    ],
)
def test_segment_with_a_wrong_backend(docked, notifications, small_frame, service, scheduler, message):
    viewer, widgets = docked
    viewer.add_image(small_frame.image, name="img")
    segment = widgets["Segment cells"]
    segment._service.value = service
    segment._scheduler.value = scheduler
    assert segment.run() is None
    one_line(notifications.messages, message)


def test_train_with_nothing_chosen(docked, notifications):
    _, widgets = docked
    assert widgets["Train on corrections"].train() is None
    one_line(notifications.messages, "choose corrected Labels layers, or an export folder")


def test_train_on_labels_without_their_image(docked, notifications, small_frame):
    viewer, widgets = docked
    viewer.add_labels(small_frame.labels, name="orphan")
    train = widgets["Train on corrections"]
    train._layers.reset_choices()
    train._layers.value = [viewer.layers["orphan"]]
    assert train.train() is None
    one_line(notifications.messages, "no image layer found for 'orphan'")


def test_compare_without_two_layers(docked, notifications):
    _, widgets = docked
    assert widgets["Compare to ground truth"].compare() is None
    one_line(notifications.messages, "choose a ground-truth and a different prediction Labels layer")


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda w: w.delete(3), "choose a cells layer first"),
        (lambda w: w.merge(1, 2), "choose a cells layer first"),
        (lambda w: w.split(), "choose a cells layer first"),
        (lambda w: w.accept(1), "choose a cells layer first"),
        (lambda w: w.relabel(), "choose a cells layer first"),
        (lambda w: w.next_to_review(), "choose a cells layer first"),
    ],
    ids=["delete", "merge", "split", "accept", "relabel", "next"],
)
def test_proofread_without_a_layer(docked, notifications, action, message):
    _, widgets = docked
    action(widgets["Proofread cells"])
    one_line(notifications.messages, message)
