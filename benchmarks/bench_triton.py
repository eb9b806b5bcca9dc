"""The service with the model local vs behind Triton: per-frame latency ratio and what travels.

Run: ``python benchmarks/bench_triton.py [--repeats 7] [--triton-python .triton-venv/bin/python]``
(``scripts/setup_triton.sh`` makes that environment). Both services run in this
process on 127.0.0.1, one with the shipped model loaded, one with ``--triton``
pointing at the bundled CPU tritonserver serving ``export --triton`` of the same
model; requests alternate between them (a 704 x 520 synthetic frame, ~150 cells,
json answers) and the medians are compared. The wire size is what one frame's
network call moves: the letterboxed float32 tensor in, the two raw outputs back.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_triton(python: Path, repository: Path, workspace: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(workspace / "triton.log", "wb")
    command = [python, ROOT / "scripts" / "triton_server.py", repository, "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workspace", str(workspace)], stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as answer:
                if answer.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.3)
    process.kill()
    sys.exit(f"tritonserver did not start: see {workspace / 'triton.log'}")


def start_service(settings) -> str:
    import uvicorn

    from napari_livecell.service import create_app, uvicorn_config

    os.environ.setdefault("LOG_LEVEL", "warning")
    config = uvicorn_config(create_app(settings), "127.0.0.1", 0, settings)
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--triton-python", type=Path, default=ROOT / ".triton-venv" / "bin" / "python")
    args = parser.parse_args()
    if not args.triton_python.exists():
        sys.exit(f"no Triton environment at {args.triton_python}: run scripts/setup_triton.sh")

    import httpx
    import imageio.v3 as iio

    from napari_livecell.core.models.export import export_triton_repository
    from napari_livecell.core.models.triton import triton_spec
    from napari_livecell.core.training.synthetic import synthesize_image
    from napari_livecell.service import ServiceSettings

    frame = synthesize_image(seed=11, n_cells=150).image
    png = iio.imwrite("<bytes>", frame, extension=".png")
    with tempfile.TemporaryDirectory() as scratch:
        repository = export_triton_repository(None, Path(scratch) / "repo").parent
        triton, triton_url = start_triton(args.triton_python, repository, Path(scratch))
        try:
            local = start_service(ServiceSettings(device="cpu"))
            remote = start_service(ServiceSettings(model=triton_spec(triton_url, "livecell"), device="cpu"))

            def post(url: str) -> float:
                started = time.perf_counter()
                answer = httpx.post(
                    f"{url}/segment", files={"image": ("f.png", png)}, params={"format": "json"}, timeout=120
                )
                answer.raise_for_status()
                return time.perf_counter() - started

            for url in (local, remote):  # warm-up: first requests load and compile
                post(url)
                post(url)
            times = {local: [], remote: []}
            for _ in range(args.repeats):
                for url in (local, remote):
                    times[url].append(post(url))
        finally:
            triton.terminate()
            triton.wait(30)
    t_local, t_remote = statistics.median(times[local]), statistics.median(times[remote])
    height, width = 544, 704  # 520 x 704 letterboxed to stride 32
    sent = 3 * height * width * 4
    received = (37 * (height // 8 * width // 8 + height // 16 * width // 16 + height // 32 * width // 32)) * 4
    received += 32 * (height // 4) * (width // 4) * 4
    print(f"704 x 520 frame, ~150 cells, json answer; medians of {args.repeats} interleaved requests")
    print(f"| service | per frame | ratio |\n|---|---|---|\n| model local | {t_local * 1000:.0f} ms | 1.00 |")
    print(f"| model on Triton (same machine) | {t_remote * 1000:.0f} ms | {t_remote / t_local:.2f} |")
    print(
        f"wire per frame: {sent / 1e6:.2f} MB float32 tensor in, {received / 1e6:.2f} MB raw outputs back "
        f"({(sent + received) / 1e6:.2f} MB; the upload to the service itself: {len(png) / 1e6:.2f} MB PNG)"
    )


if __name__ == "__main__":
    main()
