"""``napari-livecell segment`` on long stacks: peak RSS and time per frame, streamed frame by frame.

``python benchmarks/bench_stream.py --frames 100 1000 [--source other/src]``

Issue 35: a TIFF stack of ``--frames`` 704 x 520 uint8 frames (each one of
10 synthesized scenes, rolled; written page by page, never held) is
segmented by the CLI in a fresh process with its defaults (runtime auto).

* Peak RSS: the process's ``ru_maxrss`` (from ``wait4``), goal < 1 GiB at
  1,000 frames.
* Per frame: (wall time - wall time of a 1-frame stack) / (frames - 1), so
  that start-up and the model's load are left out; the goal is the
  1,000-frame figure within 1.1x of the 100-frame one. Within one run of
  200 frames or more, also the last 100 frames' time against the first
  100's (from the outline PNGs' times): a cost that grew with the frames
  written would show there, whatever the shared machine's load between runs.

``--source``: another checkout's ``src`` to run instead (e.g. the code before
streaming), for a before/after row.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_stack(path: Path, n_frames: int, scenes: list[np.ndarray]) -> None:
    import tifffile

    with tifffile.TiffWriter(path, bigtiff=True) as tiff:
        for index in range(n_frames):
            frame = np.roll(scenes[index % len(scenes)], 3 * index, axis=1)
            options = {"description": f'{{"shape": [{n_frames}, {frame.shape[0]}, {frame.shape[1]}]}}'}
            tiff.write(frame, photometric="minisblack", metadata=None, **(options if index == 0 else {}))


def run_segment(stack: Path, out: Path, source: str) -> tuple[float, int]:
    """Wall seconds and peak RSS bytes of one ``segment`` run in a fresh process."""
    env = {**os.environ, "PYTHONPATH": source}
    argv = [sys.executable, "-m", "napari_livecell.cli", "segment", str(stack), "--out", str(out)]
    log = out.with_suffix(".log")
    start = time.perf_counter()
    with open(log, "wb") as err:  # a file, not a pipe: the progress bars would fill a pipe nobody reads
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"segment failed: {log.read_text()[-2000:]}")
    return wall, usage.ru_maxrss * 1024


def within_run(out: Path, n_frames: int) -> str:
    """Seconds per frame over the run's first and last 100 frames, from its outline PNGs' times."""
    folder = next(out.glob("*_outlines"), None)
    if folder is None or n_frames < 200:
        return ""
    times = sorted(path.stat().st_mtime for path in folder.iterdir())
    first = (times[100] - times[0]) / 100
    last = (times[-1] - times[-101]) / 100
    return f"; frames 1-100: {first * 1000:.0f} ms, last 100: {last * 1000:.0f} ms ({last / first:.2f}x)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--cells", type=int, default=50, help="cells per frame")
    parser.add_argument("--source", default=str(Path(__file__).resolve().parents[1] / "src"))
    args = parser.parse_args()

    from napari_livecell.core.training.synthetic import synthesize_image

    scenes = [synthesize_image(seed=seed, n_cells=args.cells).image for seed in range(10)]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        results = {}
        for n_frames in [1, *args.frames]:
            stack = root / f"stack{n_frames}.tif"
            write_stack(stack, n_frames, scenes)
            wall, peak = run_segment(stack, root / f"out{n_frames}", args.source)
            stack.unlink()
            results[n_frames] = (wall, peak)
            per_frame = (wall - results[1][0]) / (n_frames - 1) if n_frames > 1 else float("nan")
            print(
                f"{n_frames:5d} frames: wall {wall:7.1f} s, per frame {per_frame * 1000:6.0f} ms, "
                f"peak RSS {peak / 2**20:6.0f} MiB{within_run(root / f'out{n_frames}', n_frames)}",
                flush=True,
            )
            shutil.rmtree(root / f"out{n_frames}")
        first, last = args.frames[0], args.frames[-1]
        if last != first:
            ratio = ((results[last][0] - results[1][0]) / (last - 1)) / (
                (results[first][0] - results[1][0]) / (first - 1)
            )
            print(f"per frame at {last} / at {first}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
