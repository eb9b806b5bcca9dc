"""``napari-livecell serve``: the HTTP service (extra ``server``)."""

from __future__ import annotations

import argparse

from napari_livecell.cli.common import CommandError


def add_parser(commands) -> None:
    """Register the subcommand."""
    srv = commands.add_parser("serve", help="HTTP service: image in, outlined image / json out")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--model", default=None, help="weights; the shipped default if omitted")
    srv.add_argument("--device", default="cpu", help="cpu, cuda:N, mps or auto")
    srv.add_argument("--workers", type=int, default=1, help="inferences at once")
    srv.add_argument("--queue", type=int, default=8, help="requests that may wait (more get 503)")
    srv.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Check the model, then serve until stopped."""
    try:
        from napari_livecell.service import ServiceSettings, serve
    except ImportError as error:
        raise CommandError(
            f"the service needs the 'server' extra (pip install 'napari-livecell[server]'): {error}"
        ) from None
    from napari_livecell.core.model import check_weights_path

    check_weights_path(args.model)  # fail before the server starts, with the reason
    settings = ServiceSettings(
        model=args.model, device=args.device, concurrency=args.workers, queue=args.queue
    )
    serve(args.host, args.port, settings)
    return 0
