"""Huge frames (issue 16 item 4): tiling cost per tile and peak memory against a normal frame.

A ``side`` x ``side`` 12-bit mosaic, tiled from one synthetic 704 x 520 frame (so
cells are everywhere, at LIVECell density), is segmented tile by tile as the CLI
and the widget do (:func:`segment_frame_steps`, outlines traced after). Its cost
per tile is compared, in the same process, with the cost of the 704 x 520 frame
itself and of one 704 x 704 tile; its peak RSS with the label image and the frame.

Run: ``python benchmarks/bench_huge_image.py [--side 20000] [--device cpu]``.
Prints a Markdown table; numbers from this machine go into benchmarks/README.md.

``--ome-zarr`` (under ``xvfb-run``) measures the OME-Zarr side instead, without the
model: the ``side`` x ``side`` mosaic is written as an OME-Zarr image band by band, read
back lazily, its labels (the synthetic frame's true cells, tiled the same way, ids
running on) written tile by tile into ``labels/cells`` through the label sink ``segment``
streams into, and the result opened in napari through the plugin: peak RSS and the time
to the first drawn frame.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import time

import numpy as np

from napari_livecell.core.inference.predict import PredictSettings, segment_frame, segment_frame_steps
from napari_livecell.core.models.model import load_model
from napari_livecell.core.training.synthetic import synthesize_image

MIB = 2**20


def rss_mib() -> float:
    """Resident memory now (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / MIB


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def twelve_bit(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.uint16) * 16 + 7).astype(np.uint16)


def mosaic(base: np.ndarray, side: int) -> np.ndarray:
    """``side`` x ``side`` 12-bit frame tiled from ``base``, in row bands (no whole-frame temporaries)."""
    frame = np.empty((side, side), dtype=np.uint16)
    row_of_bases = twelve_bit(np.tile(base, (1, side // base.shape[1] + 1))[:, :side])
    for start in range(0, side, base.shape[0]):
        stop = min(start + base.shape[0], side)
        frame[start:stop] = row_of_bases[: stop - start]
    return frame


def median_seconds(function, repeats: int) -> tuple[float, float]:
    """Median wall-clock and CPU seconds (all threads) of ``function``.

    CPU time is what a shared machine's other work disturbs least: the ratios
    are given in both.
    """
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def write_ome_zarr_image(path, base: np.ndarray, side: int, pixel_size_um: float) -> None:
    """A ``side`` x ``side`` 12-bit OME-Zarr image (NGFF 0.5, one level), written band by band."""
    import zarr
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_multiscales_metadata

    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    array = group.create_array(
        "0", shape=(side, side), chunks=(1024, 1024), dtype=np.uint16, dimension_names=["y", "x"]
    )
    row_of_bases = twelve_bit(np.tile(base, (1, side // base.shape[1] + 1))[:, :side])
    band = np.empty((1024, side), dtype=np.uint16)
    for start in range(0, side, 1024):
        stop = min(start + 1024, side)
        for row in range(start, stop):
            band[row - start] = row_of_bases[row % base.shape[0]]
        array[start:stop] = band[: stop - start]
    datasets = [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [pixel_size_um] * 2}]}]
    write_multiscales_metadata(
        group, datasets, fmt=FormatV05(), axes=["y", "x"], axes_units={"y": "micrometer", "x": "micrometer"}
    )


def ome_zarr_main(side: int) -> None:
    """OME-Zarr in and out at ``side`` x ``side``: peak RSS, write times, napari's first frame."""
    import tempfile
    from pathlib import Path

    from napari_livecell.core.formats.ome_zarr import open_label_sink, read_labels
    from napari_livecell.core.images import open_ome_zarr

    synthetic = synthesize_image(seed=3, n_cells=300)
    base, base_labels = synthetic.image, synthetic.labels
    per_base = int(base_labels.max())
    with tempfile.TemporaryDirectory(dir=".") as folder:
        image_path = Path(folder) / "huge.ome.zarr"
        started = time.perf_counter()
        write_ome_zarr_image(image_path, base, side, 0.5)
        image_s = time.perf_counter() - started
        image_peak = peak_rss_mib()
        started = time.perf_counter()
        image = open_ome_zarr(image_path)
        open_s = time.perf_counter() - started
        block = np.asarray(image.data[:1024, :1024])
        assert block[0, 0] == twelve_bit(base)[0, 0]
        out = Path(folder) / "out" / "huge.ome.zarr"
        out.parent.mkdir()
        started = time.perf_counter()
        sink = open_label_sink(out, (side, side), image=image)
        tiles = 0
        height, width = base_labels.shape
        for row in range(0, side, height):
            for col in range(0, side, width):
                part = base_labels[: min(height, side - row), : min(width, side - col)].astype(np.uint32)
                part[part > 0] += tiles * per_base  # ids run on, as a frame's tiles give them
                sink.write_tile((), row, col, part)
                tiles += 1
        sink.close()
        labels_s = time.perf_counter() - started
        labels_peak = peak_rss_mib()
        stored = read_labels(out)
        assert int(np.asarray(stored.data[-1024:, -1024:]).max()) > 0
        (cold_open, cold_drawn, levels), (warm_open, warm_drawn, _) = napari_first_frame(out)
        store_mib = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / MIB
        image_mib = sum(p.stat().st_size for p in image_path.rglob("*") if p.is_file()) / MIB
        print(f"machine: {platform.processor() or platform.machine()}")
        print(f"| {side} x {side} OME-Zarr | value |")
        print("|---|---|")
        rows = [
            (
                "image written band by band (uint16, 1024^2 chunks, zstd)",
                f"{image_s:.1f} s, {image_mib:.0f} MiB on disk",
            ),
            ("image opened lazily (metadata, dask graph)", f"{open_s * 1000:.0f} ms"),
            ("peak RSS after writing the image", f"{image_peak:.0f} MiB"),
            (
                f"labels/cells written tile by tile ({tiles} tiles of {width} x {height}, "
                f"{stored.data.dtype}, {len(stored.pyramid)} levels)",
                f"{labels_s:.1f} s, {store_mib:.0f} MiB on disk",
            ),
            ("**peak RSS, image and labels written**", f"**{labels_peak:.0f} MiB**"),
            (
                "napari: viewer.open(store, plugin='napari-livecell'), first / again",
                f"{cold_open:.2f} / {warm_open:.2f} s ({levels} levels)",
            ),
            (
                "**napari: open + first frame drawn, first / again**",
                f"**{cold_drawn:.2f} / {warm_drawn:.2f} s**",
            ),
        ]
        for name, value in rows:
            print(f"| {name} | {value} |")


def napari_first_frame(store) -> list[tuple[float, float, int]]:
    """Seconds to open ``store`` in a napari viewer through the plugin, and to its first drawn frame.

    Twice: the first open imports the readers (zarr, dask.array), the second is what opening
    another store costs.
    """
    import napari

    viewer = napari.Viewer(show=False)
    viewer.screenshot(canvas_only=True)  # GL context and shaders up before the clock starts
    times = []
    for _ in range(2):
        started = time.perf_counter()
        layers = viewer.open(str(store), plugin="napari-livecell")
        opened = time.perf_counter() - started
        viewer.screenshot(canvas_only=True)
        drawn = time.perf_counter() - started
        times.append((opened, drawn, len(layers[0].data) if layers[0].multiscale else 1))
        viewer.layers.clear()
    viewer.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=20000, help="edge of the square frame in pixels")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each normal-size reference")
    parser.add_argument("--ome-zarr", action="store_true", help="the OME-Zarr side, without the model")
    args = parser.parse_args()
    if args.ome_zarr:
        ome_zarr_main(args.side)
        return

    model = load_model(device=args.device)
    settings = PredictSettings()
    base = synthesize_image(seed=3, n_cells=300).image  # 520 x 704, LIVECell's frame
    base16 = twelve_bit(base)
    square = mosaic(base, 704)
    segment_frame(base16, model, settings)  # warm up: first inference, model input probe
    frame_s, frame_cpu = median_seconds(lambda: segment_frame(base16, model, settings).polygons, args.repeats)
    tile_s, tile_cpu = median_seconds(lambda: segment_frame(square, model, settings).polygons, args.repeats)
    base_cells = segment_frame(base16, model, settings).n_cells

    huge = mosaic(base, args.side)
    before_rss, before_peak = rss_mib(), peak_rss_mib()
    started, started_cpu = time.perf_counter(), time.process_time()
    steps = segment_frame_steps(huge, model, settings)
    tile_times = []
    last = started
    while True:
        try:
            _, tiles = next(steps)
        except StopIteration as finished:
            result = finished.value
            break
        now = time.perf_counter()
        tile_times.append(now - last)
        last = now
    finish_s = time.perf_counter() - last
    segmented_s = time.perf_counter() - started
    segmented_peak = peak_rss_mib()
    outlines_started = time.perf_counter()
    result.polygons  # noqa: B018  (traced in the worker by core.run, as for the CLI and the widget)
    outlines_s = time.perf_counter() - outlines_started
    total_s, total_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    # the references again, after: the machine's load may have changed during the long run
    tile_after_s, tile_after_cpu = median_seconds(
        lambda: segment_frame(square, model, settings).polygons, args.repeats
    )
    peak = peak_rss_mib()
    labels_mib, image_mib = result.labels.nbytes / MIB, huge.nbytes / MIB
    per_tile, per_tile_cpu = total_s / tiles, total_cpu / tiles

    print(f"machine: {platform.processor() or platform.machine()}, device {args.device}")
    print(f"| {args.side} x {args.side} uint16 | value |")
    print("|---|---|")
    rows = [
        ("pixels", f"{args.side**2 / 1e6:.0f} Mpx ({args.side**2 / base.size:.0f} x 704 x 520)"),
        ("tiles (704 x 704, 128 px overlap)", f"{tiles}"),
        ("cells found", f"{result.n_cells} ({base_cells} in one 704 x 520 frame)"),
        ("total (segment + outlines)", f"{total_s:.1f} s"),
        ("first progress (first tile done)", f"{tile_times[0]:.2f} s"),
        (
            "per tile: median / mean / 90th percentile / slowest",
            " / ".join(
                f"{seconds:.3f}"
                for seconds in (
                    statistics.median(tile_times),
                    statistics.mean(tile_times),
                    float(np.percentile(tile_times, 90)),
                    max(tile_times),
                )
            )
            + " s",
        ),
        ("after the last tile (fragments, relabel) / outlines", f"{finish_s:.1f} s / {outlines_s:.1f} s"),
        ("per tile, all included (total / tiles): wall / CPU", f"{per_tile:.3f} s / {per_tile_cpu:.3f} s"),
        ("704 x 520 frame (segment + outlines), median: wall / CPU", f"{frame_s:.3f} s / {frame_cpu:.3f} s"),
        (
            "704 x 704 frame = one tile, median before / after: wall; CPU",
            f"{tile_s:.3f} / {tile_after_s:.3f} s; {tile_cpu:.3f} / {tile_after_cpu:.3f} s",
        ),
        (
            "**per tile / 704 x 520 frame**: wall; CPU",
            f"**{per_tile / frame_s:.2f}**; **{per_tile_cpu / frame_cpu:.2f}**",
        ),
        (
            "**per tile / 704 x 704 frame** (before): wall; CPU",
            f"**{per_tile / tile_s:.2f}**; **{per_tile_cpu / tile_cpu:.2f}**",
        ),
        ("segmentation alone, per tile / 704 x 704 frame (wall)", f"{segmented_s / tiles / tile_s:.2f}"),
        (
            "median tile / 704 x 520 frame (wall; least disturbed by other work)",
            f"{statistics.median(tile_times) / frame_s:.2f}",
        ),
        ("image / labels (int32)", f"{image_mib:.0f} MiB / {labels_mib:.0f} MiB"),
        ("RSS before the frame was segmented (model, image)", f"{before_rss:.0f} MiB"),
        ("**peak RSS, segmenting**", f"**{segmented_peak:.0f} MiB**"),
        ("peak RSS segmenting - RSS before - labels", f"{segmented_peak - before_rss - labels_mib:.0f} MiB"),
        ("peak RSS with outlines (polygons of every cell)", f"{peak:.0f} MiB"),
    ]
    if before_peak > before_rss + 1:
        rows.append(("(peak RSS before segmenting, references)", f"{before_peak:.0f} MiB"))
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
