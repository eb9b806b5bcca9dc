"""The console script, run as a user would run it."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_livecell.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "napari_livecell.cli", *args], capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    assert main(["synth", "--out", str(out), "--n", "2", "--seed", "4", "--cells", "60"]) == 0
    return out


def test_synth_writes_livecell_dataset(sample_dir):
    images = sorted((sample_dir / "images").glob("*.tif"))
    assert [p.name for p in images] == [
        "SkBr3_Phase_A1_1_00d00h00m_1.tif",
        "SkBr3_Phase_A1_1_00d00h00m_2.tif",
    ]
    assert json.loads((sample_dir / "synth.json").read_text())["seed"] == 4


def test_segment_writes_labels_outlines_and_coco(sample_dir, tmp_path):
    out = tmp_path / "results"
    code = main(["segment", str(sample_dir / "images" / "*.tif"), "--out", str(out), "--device", "cpu"])
    assert code == 0
    for image_path in sorted((sample_dir / "images").glob("*.tif")):
        truth = tifffile.imread(sample_dir / "labels" / image_path.name.replace(".tif", "_labels.tif"))
        labels = tifffile.imread(out / f"{image_path.stem}_labels.tif")
        assert labels.shape == truth.shape == (520, 704)
        assert abs(int(labels.max()) - int(truth.max())) <= 0.15 * truth.max()
        import imageio.v3 as iio

        outlines = iio.imread(out / f"{image_path.stem}_outlines.png")
        assert outlines.shape == (520, 704, 3)
        yellow = (outlines[..., 0] == 255) & (outlines[..., 1] == 220) & (outlines[..., 2] == 0)
        assert yellow[labels > 0].mean() > 0.1 and not yellow[labels == 0].any()
    predictions = json.loads((out / "predictions.json").read_text())
    assert len(predictions["images"]) == 2
    assert all(0.4 <= a["score"] <= 1 for a in predictions["annotations"])
    from pycocotools.coco import COCO

    assert len(COCO(str(out / "predictions.json")).getAnnIds()) == len(predictions["annotations"])


def test_segment_a_stack(tmp_path, small_frame):
    stack_path = tmp_path / "stack.tif"
    tifffile.imwrite(stack_path, np.stack([small_frame.image] * 3), photometric="minisblack")
    assert main(["segment", str(stack_path), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    labels_path = tmp_path / "out" / "stack_labels.tif"
    labels = tifffile.imread(labels_path)
    assert labels.shape == (3, 256, 320) and labels.max() > 10
    with tifffile.TiffFile(labels_path) as tif:  # three label frames, not one RGB picture
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK


@pytest.mark.parametrize(
    ("make_input", "message"),
    [
        (lambda d: d / "missing.tif", "image not found"),
        (
            lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt",
            "not a supported image",
        ),
        (
            lambda d: (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken") and d / "broken.png",
            "cannot read broken.png",
        ),
    ],
    ids=["missing", "not-an-image", "corrupt"],
)
def test_bad_images_give_one_line_errors_and_no_output(tmp_path, make_input, message):
    path = make_input(tmp_path)
    out = tmp_path / "out"
    result = run_cli("segment", str(path), "--out", str(out), "--device", "cpu")
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(out.glob("*")) if out.exists() else True


@pytest.mark.parametrize(
    ("weights", "message"),
    [("missing.pt", "model file not found"), ("corrupt.pt", "corrupt")],
)
def test_bad_weights_give_one_line_errors(tmp_path, sample_dir, weights, message):
    if weights == "corrupt.pt":
        (tmp_path / weights).write_bytes(b"garbage" * 100)
    result = run_cli(
        "segment",
        str(sample_dir / "images"),
        "--model",
        str(tmp_path / weights),
        "--out",
        str(tmp_path / "out"),
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_demo_docks_the_widget_segments_and_saves_a_screenshot(tmp_path):
    import os

    if not os.environ.get("DISPLAY"):
        pytest.skip("needs a display (run under xvfb-run)")
    shot = tmp_path / "demo.png"
    result = run_cli("demo", "--run", "--screenshot", str(shot))
    assert result.returncode == 0, result.stderr[-2000:]
    import imageio.v3 as iio

    image = iio.imread(shot)[..., :3].astype(int)
    assert image.shape[0] > 400 and image.shape[1] > 800
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]
    outline_pixels = np.count_nonzero((red > 200) & (green > 200) & (blue < 80))  # yellow outlines
    assert outline_pixels > 3000, "the screenshot shows the cells' outlines"


def test_serve_refuses_missing_weights_before_starting(tmp_path):
    result = run_cli("serve", "--model", str(tmp_path / "nope.pt"), "--port", "0")
    assert result.returncode == 2
    assert "model file not found" in result.stderr and "Traceback" not in result.stderr


def test_serve_options_set_the_service_limits():
    from napari_livecell.cli import build_parser
    from napari_livecell.cli.serve import DEFAULT_MAX_IMAGE_MB, DEFAULT_REQUEST_TIMEOUT_S, settings_from_args
    from napari_livecell.service import ServiceSettings

    parser = build_parser()
    assert settings_from_args(parser.parse_args(["serve"]), ServiceSettings) == ServiceSettings()
    # the defaults --help shows are the service's
    assert ServiceSettings().request_timeout_s == DEFAULT_REQUEST_TIMEOUT_S
    assert ServiceSettings().max_image_bytes == DEFAULT_MAX_IMAGE_MB * 1_000_000
    args = parser.parse_args(["serve", "--request-timeout", "7.5", "--max-image-mb", "20", "--queue", "3"])
    settings = settings_from_args(args, ServiceSettings)
    assert (settings.request_timeout_s, settings.max_image_bytes, settings.queue) == (7.5, 20_000_000, 3)


@pytest.mark.parametrize(
    ("option", "value"), [("--request-timeout", "0"), ("--max-image-mb", "-1"), ("--request-timeout", "nan")]
)
def test_serve_refuses_limits_that_are_not_positive(capsys, option, value):
    assert main(["serve", option, value, "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert f"{option} must be a positive number" in err and len(err.strip().splitlines()) == 1


def test_serve_max_image_mb_refuses_larger_uploads(tmp_path):
    """``serve --max-image-mb 1``: a 1.44 MB float32 TIFF gets a 413 that states the limit."""
    import io
    import socket
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "napari_livecell.cli", "serve", "--port", str(port), "--max-image-mb", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read()
                time.sleep(0.2)
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, np.zeros((600, 600), np.float32), compression="zlib")
        files = {"image": ("big.tif", buffer.getvalue(), "image/tiff")}
        response = httpx.post(f"{url}/segment", files=files, timeout=60)
        assert response.status_code == 413
        assert "1 MB" in response.json()["detail"]
    finally:
        server.terminate()
        server.wait(timeout=30)
