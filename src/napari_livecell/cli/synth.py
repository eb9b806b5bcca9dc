"""``napari-livecell synth``: synthetic LIVECell-like images with exact labels."""

from __future__ import annotations

import argparse

from napari_livecell.cli.common import CommandError, ensure_output_folder, progress_bar


def add_parser(commands) -> None:
    """Register the subcommand."""
    synth = commands.add_parser("synth", help="write synthetic LIVECell-like images and labels")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--n", type=int, default=10, help="number of images (or time-lapses)")
    synth.add_argument("--seed", type=int, default=0, help="random seed: the same seed, the same images (0)")
    synth.add_argument("--frames", type=int, default=None, help="write time-lapses of T frames")
    synth.add_argument("--cells", type=int, default=None, help="cells per image (default 20..600)")
    synth.add_argument(
        "--look",
        choices=["skbr3", "bright", "fluorescence"],
        default="skbr3",
        help="cell type: skbr3 (what the shipped model knows), bright (large, bright, new) or "
        "fluorescence (bright nuclei on a dark background)",
    )
    synth.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write the images, label TIFFs and a LIVECell-layout COCO json."""
    from napari_livecell.core.training.synthetic_dataset import write_synthetic_dataset

    if args.n < 1:
        raise CommandError("--n must be at least 1")
    ensure_output_folder(args.out)
    with progress_bar(args.n, "synth") as bar:
        json_path = write_synthetic_dataset(
            args.out,
            args.n,
            seed=args.seed,
            n_frames=args.frames,
            n_cells=args.cells,
            look=args.look,
            cell_type="SkBr3" if args.look == "skbr3" else args.look.capitalize(),
            progress=lambda done, total: bar.update(1),
        )
    print(f"wrote {json_path} and images/, labels/ in {args.out}")
    return 0
