"""Latency of the HTTP service vs the core on one 704 x 520 image (interleaved medians).

Run: ``python benchmarks/bench_service.py [--repeats 15]``.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import httpx
import imageio.v3 as iio
import uvicorn

from napari_livecell.core.inference.predict import segment_frame
from napari_livecell.core.models.model import load_model
from napari_livecell.core.training.synthetic import synthesize_image
from napari_livecell.service import ServiceSettings, create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    image = synthesize_image(seed=2024, n_cells=45).image
    payload = iio.imwrite("<bytes>", image, extension=".png")
    model = load_model(device="cpu")

    server = uvicorn.Server(
        uvicorn.Config(create_app(ServiceSettings()), host="127.0.0.1", port=0, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/segment"

    def timed(function) -> float:
        started = time.perf_counter()
        function()
        return time.perf_counter() - started

    def core_png():
        from napari_livecell.core.inference.render import draw_outlines, png_bytes

        result = segment_frame(image, model)
        png_bytes(draw_outlines(image, result.labels))

    with httpx.Client(timeout=120) as client:

        def request(kind):
            return client.post(
                url, params={"format": kind}, files={"image": ("x.png", payload)}
            ).raise_for_status()

        for warm in (core_png, lambda: request("png"), lambda: request("json")):
            warm()
        core, png, js = [], [], []
        for _ in range(args.repeats):
            core.append(timed(core_png))
            png.append(timed(lambda: request("png")))
            js.append(timed(lambda: request("json")))
    server.should_exit = True
    core_ms, png_ms, json_ms = (1000 * statistics.median(v) for v in (core, png, js))
    print(f"core (segment + outlined PNG): {core_ms:.1f} ms")
    print(f"service ?format=png: {png_ms:.1f} ms ({png_ms / core_ms:.2f}x, +{png_ms - core_ms:.1f} ms)")
    print(f"service ?format=json: {json_ms:.1f} ms ({json_ms / core_ms:.2f}x)")


if __name__ == "__main__":
    main()
