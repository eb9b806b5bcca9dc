"""The shipped model behind a real Triton Inference Server (nvidia-pytriton's CPU build, own venv).

The server runs from the environment ``scripts/setup_triton.sh`` makes (``.ci/run`` makes it at
``.triton-venv``); these tests skip, saying so, only where that environment could not be installed.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TRITON_PYTHON = Path(
    os.environ.get("NAPARI_LIVECELL_TRITON_PYTHON") or ROOT / ".triton-venv" / "bin" / "python"
)

pytestmark = pytest.mark.skipif(
    not TRITON_PYTHON.exists(),
    reason=f"no Triton environment at {TRITON_PYTHON}: run scripts/setup_triton.sh (.ci/run does)",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TritonServer:
    """The bundled tritonserver on 127.0.0.1, started and stopped on demand."""

    def __init__(self, repository: Path, workspace: Path) -> None:
        self.repository, self.workspace = repository, workspace
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> None:
        log = open(self.workspace / "triton.log", "ab")  # the server writes it while it runs
        launcher = ROOT / "scripts" / "triton_server.py"
        arguments = [self.repository, "--port", str(self.port), "--workspace", str(self.workspace)]
        self.process = subprocess.Popen(
            [TRITON_PYTHON, launcher, *arguments],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"tritonserver exited: {(self.workspace / 'triton.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/v2/health/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        pytest.fail(f"tritonserver not ready in {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture(scope="module")
def triton(tmp_path_factory):
    from napari_livecell.cli import main

    folder = tmp_path_factory.mktemp("triton")
    assert main(["export", "default", "--triton", str(folder / "repo")]) == 0
    server = TritonServer(folder / "repo", folder)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def frame():
    from napari_livecell.core.training.synthetic import synthesize_image

    return synthesize_image(seed=2024, n_cells=40, shape=(256, 320))


def test_a_triton_model_finds_the_same_cells_as_the_local_one(triton, frame):
    from napari_livecell.core.analysis.matching import match_cells
    from napari_livecell.core.inference.predict import segment_frame
    from napari_livecell.core.models.model import load_model
    from napari_livecell.core.models.triton import triton_spec

    remote = segment_frame(frame.image, load_model(triton_spec(triton.url, "livecell")))
    local = segment_frame(frame.image, load_model(device="cpu"))
    assert remote.n_cells == local.n_cells > 0.8 * frame.labels.max()
    match = match_cells(local.labels, remote.labels)
    assert match.n_matched == local.n_cells and match.ious.min() >= 0.95


def test_a_missing_model_or_server_is_one_line(triton):
    from napari_livecell.core.errors import ModelError
    from napari_livecell.core.models.triton import TritonUnavailable, check_triton_model, triton_spec

    with pytest.raises(ModelError, match=r"has no ready model 'cells' \(it has: livecell\)"):
        check_triton_model(triton_spec(triton.url, "cells"))
    nobody = free_port()
    with pytest.raises(TritonUnavailable, match=f"127.0.0.1:{nobody} does not answer"):
        check_triton_model(triton_spec(f"127.0.0.1:{nobody}", "livecell"))


def test_the_launcher_refuses_a_folder_that_is_no_repository(tmp_path):
    run = subprocess.run(
        [TRITON_PYTHON, ROOT / "scripts" / "triton_server.py", tmp_path],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "is not a Triton model repository" in run.stderr


def test_concurrent_requests_are_batched(triton, frame):
    """Sixteen requests at once: every answer is right, and Triton ran them in fewer forward passes."""
    import tritonclient.http as triton_http

    client = triton_http.InferenceServerClient(url=triton.url.removeprefix("http://"), concurrency=8)
    tensor = np.random.default_rng(0).random((1, 3, 256, 320), dtype=np.float32)
    request = triton_http.InferInput("images", list(tensor.shape), "FP32")
    request.set_data_from_numpy(tensor)

    before = client.get_inference_statistics("livecell")["model_stats"][0]
    pending = [client.async_infer("livecell", [request]) for _ in range(16)]
    answers = [answer.get_result().as_numpy("output1") for answer in pending]
    after = client.get_inference_statistics("livecell")["model_stats"][0]
    assert all(np.allclose(answer, answers[0], atol=1e-4) for answer in answers)
    requests = after["inference_count"] - before["inference_count"]
    passes = after["execution_count"] - before["execution_count"]
    assert requests == 16 and passes < requests, f"{requests} requests ran in {passes} forward passes"
    print(f"16 concurrent requests ran in {passes} forward passes", file=sys.stderr)


def labels_from_json(answer: dict, shape: tuple[int, int]) -> np.ndarray:
    from pycocotools import mask as mask_utils

    labels = np.zeros(shape, np.int32)
    for number, annotation in enumerate(answer["annotations"], start=1):
        segmentation = annotation["segmentation"]
        if isinstance(segmentation, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, *shape))
        else:
            rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode()}
        labels[mask_utils.decode(rle).astype(bool)] = number
    return labels


def test_the_service_on_triton_answers_like_the_local_one_and_rides_out_a_triton_restart(
    triton, frame, server
):
    """Same cells as the local service; Triton stopped: 503 in one line; Triton back: answers again."""
    pytest.importorskip("fastapi")
    from napari_livecell.core.analysis.matching import match_cells
    from napari_livecell.core.models.triton import triton_spec
    from napari_livecell.service import ServiceSettings
    from tests.servers import start_service, stop_service
    from tests.test_service import png_bytes, post

    settings = ServiceSettings(model=triton_spec(triton.url, "livecell"), device="cpu", request_timeout_s=60)
    instance, thread, url = start_service(settings)
    try:
        image = png_bytes(frame.image)
        remote, local = post(url, image, format="json"), post(server, image, format="json")
        assert remote.status_code == local.status_code == 200
        remote_labels = labels_from_json(remote.json(), frame.image.shape)
        local_labels = labels_from_json(local.json(), frame.image.shape)
        assert len(remote.json()["annotations"]) == len(local.json()["annotations"]) > 0
        match = match_cells(local_labels, remote_labels)
        assert match.n_matched == len(local.json()["annotations"]) and match.ious.min() >= 0.95

        triton.stop()
        down = post(url, image, format="json")
        assert down.status_code == 503
        reason = down.json()["detail"]
        assert reason.startswith("Triton at http://127.0.0.1:") and "does not answer" in reason
        assert "\n" not in reason

        triton.start()
        again = post(url, image, format="json")
        assert again.status_code == 200
        assert len(again.json()["annotations"]) == len(local.json()["annotations"])
    finally:
        stop_service(instance, thread)
        if triton.process is None:
            triton.start()  # the module's other tests still need it


def test_segment_cli_on_triton_writes_what_the_local_run_writes(triton, frame, tmp_path, capsys):
    import tifffile

    from napari_livecell.cli import main

    tifffile.imwrite(tmp_path / "frame.tif", frame.image)
    assert main(["segment", str(tmp_path / "frame.tif"), "--out", str(tmp_path / "local")]) == 0
    remote_run = ["segment", str(tmp_path / "frame.tif"), "--out", str(tmp_path / "remote")]
    assert main([*remote_run, "--triton", triton.url, "--triton-model", "livecell"]) == 0
    local = tifffile.imread(tmp_path / "local" / "frame_labels.tif")
    remote = tifffile.imread(tmp_path / "remote" / "frame_labels.tif")
    np.testing.assert_array_equal(local, remote)
    capsys.readouterr()
    assert main([*remote_run, "--overwrite", "--triton", triton.url, "--triton-model", "cells"]) == 2
    assert "has no ready model 'cells'" in capsys.readouterr().err


def test_the_segment_widget_runs_its_model_on_triton(triton, frame, make_napari_viewer, qtbot):
    from napari_livecell.core.inference.predict import segment_frame
    from napari_livecell.core.models.model import load_model
    from napari_livecell.core.models.triton import triton_spec

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-livecell", "Segment cells")
    viewer.add_image(frame.image, name="img")
    widget._service.value = triton_spec(triton.url, "livecell")
    assert widget.run() is not None, widget._status.value
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    local = segment_frame(frame.image, load_model(device="cpu"))
    assert np.array_equal(viewer.layers["img cells"].data > 0, local.labels > 0)
    assert widget._status.value.startswith(f"{local.n_cells} cells")
