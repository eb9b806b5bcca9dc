"""Tracking accuracy and speed on synthetic time-lapses (issue 18).

Accuracy: synthetic LIVECell-sized time-lapses with known motion and
divisions, tracked from their per-frame labels (ids restart every frame, as a
segmentation gives them); fraction of correct links against the ground truth
(links between successive sightings of a cell and mother -> daughter links),
divisions found, and the Cell Tracking Challenge's TRA when py-ctcmetrics is
installed.

Speed: a long stack of ~300 cells per frame (20 synthesized frames played
forwards and backwards, so that motion stays continuous) saved as zlib label
TIFFs like ``synth`` writes them; time to read the labels vs time to track
them lazily from the same files (the reads included), and where the time goes:
the one-pass measurement (centroids, areas, overlaps; ``measure_frame``) and the
same measurement with ``skimage.measure.regionprops_table`` as it was done
before, on the first ``--regionprops-frames`` frames; and the reference linker
(``linker="laptrack"``) on the first ``--laptrack-frames`` frames. Accuracy is
measured for both linkers.

The measurement and the relabelling are compiled with numba (docs/numba.md):
the first call of a process compiles them, or loads them from numba's on-disk
cache. That cost is kept out of the timings (one warm-up call) and reported
on its own, from fresh processes: with an empty cache (compiling) and with
the cache that run filled.

Run: ``python benchmarks/bench_tracking.py [--frames 1000] [--cells 300] [--seeds 3]``
(``--seeds 0`` skips the accuracy part).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def accuracy(seeds: int, frames: int, cells: int, linker: str) -> None:
    from napari_livecell.core.tracking.track import graph_from_lineage, link_accuracy, track_cells
    from napari_livecell.core.training.synthetic import synthesize_timelapse

    try:
        from ctc_metrics.scripts.evaluate import evaluate_sequence
    except ImportError:
        evaluate_sequence = None
    totals = np.zeros(4)
    for seed in range(seeds):
        lapse = synthesize_timelapse(seed=seed, n_frames=frames, n_cells=cells)
        started = time.perf_counter()
        result = track_cells(lapse.labels, linker=linker)
        seconds = time.perf_counter() - started
        truth = graph_from_lineage(lapse.lineage)
        scores = link_accuracy(lapse.track_labels, truth, result.labels, result.graph)
        line = (
            f"{linker} seed {seed}: {frames} frames, {len(lapse.lineage)} true tracks, "
            f"links right {scores['recall']:.4f} ({scores['links']:.0f} links), "
            f"precision {scores['precision']:.4f}, divisions found "
            f"{scores['divisions_found']:.0f}/{scores['divisions']:.0f} "
            f"(predicted {scores['divisions_predicted']:.0f}), tracking {seconds:.2f} s"
        )
        totals += [
            scores["recall"] * scores["links"],
            scores["links"],
            scores["divisions_found"],
            scores["divisions"],
        ]
        if evaluate_sequence is not None:
            line += f", TRA {_tra(evaluate_sequence, lapse, truth, result):.4f}"
        print(line, flush=True)
    found = f"{totals[2]:.0f}/{totals[3]:.0f}"
    print(f"{linker} all: links right {totals[0] / totals[1]:.4f}, divisions found {found}")


def _tra(evaluate_sequence, lapse, truth, result) -> float:
    import contextlib
    import io

    from napari_livecell.core.formats.ctc import write_ctc

    with tempfile.TemporaryDirectory() as folder:
        write_ctc(Path(folder) / "GT" / "TRA", lapse.track_labels, truth, ground_truth=True)
        write_ctc(Path(folder) / "RES", result.labels, result.graph)
        with contextlib.redirect_stdout(io.StringIO()):
            scores = evaluate_sequence(
                str(Path(folder) / "RES"), str(Path(folder) / "GT"), ["TRA"], threads=1
            )
    return scores["TRA"]


# a fresh process: numba's import, then the first measurement and relabelling of a 704 x 520 uint16 stack
_FIRST_CALL = """
import time
import numpy as np
from napari_livecell.core.training.synthetic import synthesize_timelapse
from napari_livecell.core.tracking import relabel as track_relabel
from napari_livecell.core.tracking import track as tracking
labels = synthesize_timelapse(seed=0, n_frames=2, n_cells=300).labels.astype(np.uint16)
started = time.perf_counter()
tracking.measure_frame(labels[1], labels[0])
tracking.measure_frame(labels[1])
track_relabel._apply_lookup(labels[1], np.arange(int(labels[1].max()) + 1, dtype=np.int32))
print(time.perf_counter() - started)
"""


def first_call() -> tuple[float, float]:
    """Seconds of a process's first measurement: with an empty numba cache (compiling), then cached."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        seconds = [
            float(
                subprocess.run(
                    [sys.executable, "-c", _FIRST_CALL], env=env, check=True, capture_output=True, text=True
                ).stdout
            )
            for _ in range(2)
        ]
    return seconds[0], seconds[1]


def speed(frames: int, cells: int, regionprops_frames: int, laptrack_frames: int, repeats: int) -> None:
    import dask
    import dask.array as da
    import tifffile
    from skimage.measure import regionprops_table

    from napari_livecell.core.tracking.track import Overlaps, cell_table, iter_frames, track_cells
    from napari_livecell.core.training.synthetic import synthesize_timelapse

    lapse = synthesize_timelapse(seed=100, n_frames=20, n_cells=cells)
    cycle = list(range(20)) + list(range(18, 0, -1))
    order = [cycle[i % len(cycle)] for i in range(frames)]
    per_frame = np.mean([len(np.unique(f)) - 1 for f in lapse.labels])
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for t, source in enumerate(order):
            path = Path(folder) / f"frame{t:04d}_labels.tif"
            tifffile.imwrite(path, lapse.labels[source].astype(np.uint16), compression="zlib")
            paths.append(path)
        shape = lapse.labels.shape[1:]
        lazy = da.stack([da.from_delayed(dask.delayed(tifffile.imread)(p), shape, np.uint16) for p in paths])

        def read() -> None:
            for path in paths:
                tifffile.imread(path)

        def relabelled() -> None:
            for _ in iter_frames(result.labels):
                pass

        with dask.config.set(scheduler="synchronous"):
            # the first call compiles or loads the numba kernels: kept out of the timings
            result = track_cells(lazy)
            assert isinstance(result.labels, da.Array)  # lazy stays lazy
            # the machine is shared: each step is timed `repeats` times, interleaved, and the
            # median of each is kept, so that a busy moment does not skew one ratio (the
            # fastest run of each is printed too). The process's CPU time is kept as well: on
            # a loaded machine the wall clock also counts the time spent waiting for a core
            # (everything here runs in this one thread)
            timings: dict[str, list[float]] = {}
            cpu: dict[str, list[float]] = {}
            steps = {
                "read": read,
                "measure": lambda: cell_table(lazy, overlaps=Overlaps()),
                "track": lambda: track_cells(lazy),
                "relabel": relabelled,
            }
            for _ in range(repeats):
                for name, step in steps.items():
                    started, started_cpu = time.perf_counter(), time.process_time()
                    step()
                    timings.setdefault(name, []).append(time.perf_counter() - started)
                    cpu.setdefault(name, []).append(time.process_time() - started_cpu)
            read_s, measure_s, track_s, relabel_s = (float(np.median(timings[name])) for name in steps)
            fastest = {name: min(timings[name]) for name in steps}
            cpu_s = {name: float(np.median(cpu[name])) for name in steps}
            started = time.perf_counter()
            for path in paths[:regionprops_frames]:
                regionprops_table(tifffile.imread(path), properties=("label", "centroid", "area"))
            regionprops_s = (time.perf_counter() - started) * frames / max(min(regionprops_frames, frames), 1)
            laptrack_frames = min(laptrack_frames, frames)
            started = time.perf_counter()
            track_cells(lazy[:laptrack_frames], linker="laptrack", relabel=False)
            laptrack_s = (time.perf_counter() - started) * frames / max(laptrack_frames, 1)
        table = result.table
    n_tracks = result.table["track_id"].nunique()
    cold_s, cached_s = first_call()
    print(
        f"{frames} frames x {per_frame:.0f} cells ({len(table)} cells, median of {repeats}, "
        f"{n_tracks} tracks, "
        f"{len(result.graph)} daughters): reading labels {read_s:.2f} s; track_cells (reads, "
        f"measurement, linking, ids) {track_s:.2f} s = {track_s / read_s:.2f}x reading; "
        f"measurement pass alone (reads included) {measure_s:.2f} s = {measure_s / read_s:.2f}x; "
        f"linking (the rest) {track_s - measure_s:.2f} s = {(track_s - measure_s) / read_s:.1f}x; "
        f"track_cells with linker='laptrack' (from {laptrack_frames} frames, scaled) {laptrack_s:.2f} s = "
        f"{laptrack_s / read_s:.1f}x; "
        f"regionprops_table instead (reads included, from {min(regionprops_frames, frames)} frames) "
        f"{regionprops_s:.2f} s = {regionprops_s / read_s:.1f}x; "
        f"relabelled stack computed block by block {relabel_s:.2f} s = {relabel_s / read_s:.2f}x reading; "
        f"fastest of {repeats}: "
        + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in fastest.items())
        + f" (track {fastest['track'] / fastest['read']:.2f}x read); "
        f"CPU time, median of {repeats}: "
        + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in cpu_s.items())
        + f" (track {cpu_s['track'] / cpu_s['read']:.2f}x read, measurement "
        f"{cpu_s['measure'] / cpu_s['read']:.2f}x, relabelled stack "
        f"{cpu_s['relabel'] / cpu_s['read']:.2f}x); "
        f"first call in a fresh process (numba's import, measuring and relabelling one frame): "
        f"{cold_s:.1f} s with an empty cache (compiling), {cached_s:.2f} s cached; "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=1000, help="frames of the speed stack")
    parser.add_argument("--cells", type=int, default=300, help="cells per frame of the speed stack")
    parser.add_argument("--seeds", type=int, default=3, help="time-lapses for accuracy")
    parser.add_argument("--accuracy-frames", type=int, default=20)
    parser.add_argument("--accuracy-cells", type=int, default=150)
    parser.add_argument("--regionprops-frames", type=int, default=100, help="frames timed with regionprops")
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved timings of each step (median kept)"
    )
    parser.add_argument("--laptrack-frames", type=int, default=200, help="frames tracked with laptrack")
    args = parser.parse_args()
    if args.seeds:
        for linker in ("overlap", "laptrack"):
            accuracy(args.seeds, args.accuracy_frames, args.accuracy_cells, linker)
    speed(args.frames, args.cells, args.regionprops_frames, args.laptrack_frames, args.repeats)


if __name__ == "__main__":
    main()
