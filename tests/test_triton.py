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
    from napari_livecell.core.synthetic import synthesize_image

    return synthesize_image(seed=2024, n_cells=40, shape=(256, 320))


def test_a_triton_model_finds_the_same_cells_as_the_local_one(triton, frame):
    from napari_livecell.core.matching import match_cells
    from napari_livecell.core.model import load_model
    from napari_livecell.core.predict import segment_frame
    from napari_livecell.core.triton import load_triton_model, triton_spec

    remote = segment_frame(frame.image, load_triton_model(triton_spec(triton.url, "livecell")))
    local = segment_frame(frame.image, load_model(device="cpu"))
    assert remote.n_cells == local.n_cells > 0.8 * frame.labels.max()
    match = match_cells(local.labels, remote.labels)
    assert match.n_matched == local.n_cells and match.ious.min() >= 0.95


def test_a_missing_model_or_server_is_one_line(triton):
    from napari_livecell.core.errors import ModelError
    from napari_livecell.core.triton import TritonUnavailable, check_triton_model, triton_spec

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
