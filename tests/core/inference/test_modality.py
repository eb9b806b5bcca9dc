"""Fluorescence or phase contrast: decided from the pixels, inverted for a phase-trained model."""

from dataclasses import replace

import numpy as np
import pytest

from napari_livecell.core.inference.frame_input import detect_modality, frame_polarity
from napari_livecell.core.inference.predict import PredictSettings
from napari_livecell.core.training.synthetic import LOOKS, synthesize_image

SHAPE = (256, 320)
SEEDS = (21, 22, 23)
N_CELLS = 70
# the same cells imaged in phase contrast: the fluorescence look's geometry, the phase renderer
PHASE_TWIN = replace(LOOKS["fluorescence"], modality="phase", darkness=LOOKS["skbr3"].darkness)


@pytest.fixture(scope="module")
def twins():
    fluorescence = [synthesize_image(s, n_cells=N_CELLS, shape=SHAPE, look="fluorescence") for s in SEEDS]
    phase = [synthesize_image(s, n_cells=N_CELLS, shape=SHAPE, look=PHASE_TWIN) for s in SEEDS]
    return fluorescence, phase


def mask_ap50(samples, model, settings) -> float:
    from napari_livecell.core.analysis.evaluate import evaluate
    from napari_livecell.core.formats.coco import CocoImage, build_coco
    from napari_livecell.core.inference.predict import segment_frame
    from napari_livecell.core.segmentation import Segmentation

    truth = build_coco(
        [CocoImage(i + 1, f"{i}.png", Segmentation.from_labels(s.labels)) for i, s in enumerate(samples)]
    )
    found = [
        CocoImage(i + 1, f"{i}.png", segment_frame(s.image, model, settings)) for i, s in enumerate(samples)
    ]
    return evaluate(truth, build_coco(found, with_scores=True))["segm"]["AP50"]


def test_same_cells_in_both_looks_and_existing_looks_unchanged(twins):
    fluorescence, phase = twins
    for f, p in zip(fluorescence, phase):
        np.testing.assert_array_equal(f.labels, p.labels)
        # bright nuclei on a dark background
        assert np.median(f.image) < 40 and f.image[f.labels > 0].mean() > 3 * np.median(f.image)
    # the new look changed nothing in the existing ones (checksums taken before it existed)
    import hashlib

    for look, before in (
        ("skbr3", "2bd7f015d0548a5ca0c1c9a6b8c5a709"),
        ("bright", "7852989145e1c10f631abd894da519bf"),
    ):
        sample = synthesize_image(0, n_cells=30, shape=(64, 96), look=look)
        assert hashlib.md5(sample.image.tobytes() + sample.labels.tobytes()).hexdigest() == before


@pytest.mark.parametrize("look", ["skbr3", "bright"])
def test_auto_takes_phase_looks_as_phase(look):
    for seed in (1, 2):
        image = synthesize_image(seed, n_cells=60 * seed, shape=SHAPE, look=look).image
        assert detect_modality(image) == "phase"
        polarity = frame_polarity(image, PredictSettings(), "phase")
        assert not polarity.inverted and polarity.decided


def test_auto_inverts_fluorescence_for_a_phase_model_not_for_a_fluorescence_model(twins):
    fluorescence, _ = twins
    for sample in fluorescence:
        assert detect_modality(sample.image) == "fluorescence"
        # 16-bit data are judged after the same scaling as inference
        assert detect_modality(sample.image.astype(np.uint16) * 40) == "fluorescence"
        polarity = frame_polarity(sample.image, PredictSettings(), "phase")
        assert polarity.inverted and "inverted for a phase model" in polarity.describe()
        assert not frame_polarity(sample.image, PredictSettings(), "fluorescence").inverted
    user_said = frame_polarity(fluorescence[0].image, PredictSettings(modality="phase"), "phase")
    assert not user_said.inverted and not user_said.decided


def test_auto_on_fluorescence_is_within_0_1_of_phase_and_override_is_worse(twins, default_model):
    fluorescence, phase = twins
    assert default_model.modality == "phase"  # the shipped model says nothing: phase, what it learnt
    on_phase = mask_ap50(phase, default_model, PredictSettings())
    auto = mask_ap50(fluorescence, default_model, PredictSettings())
    forced_phase = mask_ap50(fluorescence, default_model, PredictSettings(modality="phase"))
    print(
        f"mask AP50: phase twin {on_phase:.3f}, fluorescence auto {auto:.3f}, forced phase {forced_phase:.3f}"
    )
    assert on_phase > 0.85
    assert auto >= on_phase - 0.1
    assert forced_phase < auto - 0.5


def test_modality_setting_is_checked():
    with pytest.raises(ValueError, match="modality"):
        PredictSettings(modality="brightfield")


@pytest.mark.parametrize(("base", "inverted"), [("phase", True), ("fluorescence", False), (None, False)])
def test_training_frames_are_shown_to_the_base_model_in_its_polarity(tmp_path, base, inverted):
    """Fluorescence corrections fine-tune a phase model on inverted frames, as inference will give them."""
    import imageio.v3 as iio

    from napari_livecell.core.training.data import TrainingFrame, write_training_dataset

    scene = synthesize_image(seed=8, n_cells=20, shape=(128, 160), look="fluorescence")
    frame = TrainingFrame(name="nuclei", image=scene.image, labels=scene.labels, classes=None)
    write_training_dataset([frame], 1, {0: "cell"}, tmp_path, model_modality=base)
    (written,) = (tmp_path / "images" / "train").iterdir()
    pixels = iio.imread(written)
    pixels = pixels if pixels.ndim == 2 else pixels[..., 0]
    cells, background = scene.labels > 0, scene.labels == 0
    assert (pixels[cells].mean() < pixels[background].mean()) == inverted  # dark cells: inverted
