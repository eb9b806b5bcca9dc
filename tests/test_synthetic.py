import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from napari_livecell.core.training.synthetic import LIVECELL_SHAPE, synthesize_image, synthesize_timelapse
from napari_livecell.core.training.synthetic_dataset import livecell_file_name, write_synthetic_dataset


def test_frame_is_livecell_sized_uint8_with_consecutive_labels():
    sample = synthesize_image(seed=1, n_cells=80)
    assert sample.image.shape == LIVECELL_SHAPE == (520, 704)
    assert sample.image.dtype == np.uint8
    ids = np.unique(sample.labels)
    assert ids[0] == 0
    assert np.array_equal(ids[1:], np.arange(1, len(ids)))
    assert 60 <= len(ids) - 1 <= 80


def test_same_seed_same_image_other_seed_other_image():
    a, b, c = synthesize_image(seed=3), synthesize_image(seed=3), synthesize_image(seed=4)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("n_cells", [20, 600])
def test_density_from_sparse_to_confluent(n_cells):
    sample = synthesize_image(seed=n_cells, n_cells=n_cells)
    coverage = (sample.labels > 0).mean()
    if n_cells == 20:
        assert coverage < 0.1
    else:
        assert sample.labels.max() >= 450 and coverage > 0.5


def test_cells_are_darker_than_background_with_bright_halo():
    sample = synthesize_image(seed=9, n_cells=60)
    from scipy import ndimage as ndi

    cells = sample.labels > 0
    halo = ndi.binary_dilation(cells, iterations=2) & ~cells
    far = ~ndi.binary_dilation(cells, iterations=8)
    assert sample.image[cells].mean() < sample.image[far].mean() < sample.image[halo].mean()


def test_timelapse_cells_move_and_divide():
    lapse = synthesize_timelapse(seed=2, n_frames=8, n_cells=60)
    assert lapse.image.shape == (8, *LIVECELL_SHAPE)
    counts = [int(frame.max()) for frame in lapse.labels]
    assert not np.array_equal(lapse.labels[0], lapse.labels[-1])
    assert max(counts) > counts[0]  # divisions add cells


def test_livecell_file_names():
    assert livecell_file_name("SkBr3", 0) == "SkBr3_Phase_A1_1_00d00h00m_1.tif"
    assert livecell_file_name("SkBr3", 5, frame=9) == "SkBr3_Phase_A1_2_01d03h00m_2.tif"


def test_dataset_json_is_livecell_layout_and_pycocotools_reproduces_labels(tmp_path):
    import tifffile

    json_path = write_synthetic_dataset(tmp_path, 2, seed=7, n_cells=150)
    coco_json = json.loads(json_path.read_text())
    assert {c["name"] for c in coco_json["categories"]} == {"cell"}
    assert all(img["width"] == 704 and img["height"] == 520 for img in coco_json["images"])
    coco = COCO(str(json_path))
    for entry in coco_json["images"]:
        labels = tifffile.imread(tmp_path / "labels" / entry["file_name"].replace(".tif", "_labels.tif"))
        assert (tmp_path / "images" / entry["file_name"]).exists()
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=entry["id"]))
        assert len(annotations) == labels.max()
        ious = []
        for number, annotation in enumerate(annotations, start=1):
            mask = coco.annToMask(annotation).astype(bool)
            truth = labels == number
            ious.append((mask & truth).sum() / (mask | truth).sum())
        assert np.median(ious) >= 0.99 and min(ious) >= 0.9


def test_timelapse_dataset_has_successive_timestamps(tmp_path):
    json_path = write_synthetic_dataset(tmp_path, 1, seed=1, n_frames=3, n_cells=30)
    names = [img["file_name"] for img in json.loads(json_path.read_text())["images"]]
    assert names == [
        "SkBr3_Phase_A1_1_00d00h00m_1.tif",
        "SkBr3_Phase_A1_1_00d03h00m_1.tif",
        "SkBr3_Phase_A1_1_00d06h00m_1.tif",
    ]


def test_timelapse_ground_truth_lineage_is_consistent():
    lapse = synthesize_timelapse(seed=2, n_frames=8, n_cells=40, shape=(200, 260))
    tracks, lineage = lapse.track_labels, lapse.lineage
    assert tracks.shape == lapse.labels.shape and tracks.dtype == np.int32
    assert np.array_equal(tracks > 0, lapse.labels > 0)
    assert lineage.shape[1] == 4 and np.array_equal(lineage[:, 0], np.arange(1, len(lineage) + 1))
    spans = {int(i): (int(a), int(b), int(p)) for i, a, b, p in lineage}
    for t in range(8):
        # each cell of the frame is exactly one track, and the tracks alive are those of the table
        pairs = np.unique(np.stack([lapse.labels[t].ravel(), tracks[t].ravel()]), axis=1)
        assert len(np.unique(pairs[0])) == pairs.shape[1]
        alive = {i for i, (a, b, _) in spans.items() if a <= t <= b}
        assert set(np.unique(tracks[t][tracks[t] > 0]).tolist()) == alive
    daughters = [(i, a, p) for i, (a, _, p) in spans.items() if p]
    assert len(daughters) >= 2
    for _, first, parent in daughters:
        assert spans[parent][1] == first - 1  # the mother ends the frame before her daughters start
    # single frames carry no lineage
    assert synthesize_image(seed=1, n_cells=5).lineage is None


def test_timelapse_dataset_writes_ctc_ground_truth(tmp_path):
    import tifffile

    from napari_livecell.core.formats.ctc import read_ctc
    from napari_livecell.core.training.synthetic_dataset import timelapse_name

    write_synthetic_dataset(tmp_path, 1, seed=1, n_frames=3, n_cells=30)
    name = timelapse_name("SkBr3", 0)
    assert name == "SkBr3_Phase_A1_1_1"
    tracks, lineage = read_ctc(tmp_path / "tracks" / name)
    assert tracks.shape == (3, 520, 704) and (lineage["first_frame"] <= lineage["last_frame"]).all()
    for t in range(3):
        labels = tifffile.imread(
            tmp_path / "labels" / livecell_file_name("SkBr3", 0, t).replace(".tif", "_labels.tif")
        )
        assert np.array_equal(labels > 0, tracks[t] > 0)
