"""Throughput of a LocalCluster with 1 vs 2 worker processes, and peak memory per worker.

Run: ``python benchmarks/bench_distributed.py [--frames 24]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time


def worker_peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(n_workers: int, stack, torch_threads: int | None = None) -> tuple[float, list[float]]:
    from distributed import Client, LocalCluster

    from napari_livecell.core.inference.distributed import iter_segment_distributed

    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
        tempfile.TemporaryDirectory() as folder,
    ):
        # load the model everywhere first
        list(iter_segment_distributed(stack[:n_workers], client, torch_threads=torch_threads))
        started = time.perf_counter()
        list(iter_segment_distributed(stack, client, torch_threads=torch_threads, scratch=f"{folder}/run"))
        seconds = time.perf_counter() - started
        memory = sorted(client.run(worker_peak_rss_mib).values())
    return len(stack) / seconds, memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=24)
    args = parser.parse_args()
    from napari_livecell.core.training.synthetic import synthesize_timelapse

    stack = synthesize_timelapse(seed=3, n_frames=args.frames, n_cells=80).image
    one, memory_one = run(1, stack)
    two, memory_two = run(2, stack)
    two_single, _ = run(2, stack, torch_threads=1)
    print(f"frames: {args.frames} x 704x520; 1 worker (torch 2 threads): {one:.2f} frames/s")
    print(f"2 workers, torch 2 threads each: {two:.2f} frames/s ({two / one:.2f}x)")
    print(f"2 workers, torch 1 thread each: {two_single:.2f} frames/s ({two_single / one:.2f}x)")
    print(f"peak RSS per worker: 1 worker {memory_one} MiB; 2 workers {memory_two} MiB")


if __name__ == "__main__":
    main()
