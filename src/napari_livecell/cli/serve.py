"""``napari-livecell serve``: the HTTP service (extra ``server``)."""

from __future__ import annotations

import argparse

from napari_livecell.cli.common import CommandError
from napari_livecell.core.models.runtime import RUNTIMES

# ServiceSettings' defaults, for --help without importing FastAPI (tests/cli/test_cli.py keeps them equal)
DEFAULT_REQUEST_TIMEOUT_S = 120.0
DEFAULT_MAX_IMAGE_MB = 160.0
BYTES_PER_MB = 1_000_000


def add_parser(commands) -> None:
    """Register the subcommand."""
    srv = commands.add_parser("serve", help="HTTP service: image in, outlined image / json out")
    srv.add_argument(
        "--host", default="127.0.0.1", help="127.0.0.1 (this machine only); 0.0.0.0 exposes it to the network"
    )
    srv.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    srv.add_argument("--model", default=None, help="weights; the shipped default if omitted")
    srv.add_argument("--device", default="cpu", help="cpu, cuda:N, mps or auto")
    srv.add_argument(
        "--runtime",
        default="auto",
        choices=RUNTIMES,
        help="what runs the network: auto (ONNX Runtime, then OpenVINO, on the CPU; else torch), "
        "onnxruntime, openvino, openvino-int8 or torch (extra train) (docs/runtime.md)",
    )
    srv.add_argument(
        "--triton",
        default=None,
        metavar="URL",
        help="the network runs on this Triton Inference Server (http://HOST:PORT); the service "
        "pre- and post-processes (docs/triton.md)",
    )
    srv.add_argument("--triton-model", default="livecell", help="the model's name on the Triton server")
    srv.add_argument("--workers", type=int, default=1, help="inferences at once")
    srv.add_argument("--queue", type=int, default=8, help="requests that may wait (more get 503)")
    srv.add_argument(
        "--request-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"time limit of one request, waiting included; 504 beyond ({DEFAULT_REQUEST_TIMEOUT_S:g})",
    )
    srv.add_argument(
        "--max-image-mb",
        type=float,
        default=None,
        metavar="MB",
        help="largest decoded image in MB (10^6 bytes: height x width x channels x bytes per value), "
        f"judged from the file's header; 413 beyond ({DEFAULT_MAX_IMAGE_MB:g})",
    )
    srv.set_defaults(handler=run)


def settings_from_args(args: argparse.Namespace, settings_type: type):
    """The ``ServiceSettings`` the options ask for (its defaults where an option is omitted).

    Parameters
    ----------
    args : argparse.Namespace
        Parsed ``serve`` options.
    settings_type : type
        :class:`napari_livecell.service.ServiceSettings` (passed in: importing
        the service needs the ``server`` extra).

    Raises
    ------
    CommandError
        A limit that is not a positive number.
    """
    limits = {}
    if args.request_timeout is not None:
        if not args.request_timeout > 0:
            raise CommandError(
                f"--request-timeout must be a positive number of seconds, not {args.request_timeout:g}"
            )
        limits["request_timeout_s"] = args.request_timeout
    if args.max_image_mb is not None:
        if not args.max_image_mb > 0:
            raise CommandError(f"--max-image-mb must be a positive number of MB, not {args.max_image_mb:g}")
        limits["max_image_bytes"] = int(args.max_image_mb * BYTES_PER_MB)
    model = args.model
    if getattr(args, "triton", None):
        from napari_livecell.core.errors import ModelError
        from napari_livecell.core.models.triton import triton_spec

        if args.model:
            raise CommandError("--triton names the model (--triton-model): not with --model")
        try:
            model = triton_spec(args.triton, args.triton_model)
        except ModelError as error:
            raise CommandError(str(error)) from None
    return settings_type(
        model=model,
        device=args.device,
        runtime=getattr(args, "runtime", "auto"),
        concurrency=args.workers,
        queue=args.queue,
        **limits,
    )


def run(args: argparse.Namespace) -> int:
    """Check the options and the model, then serve until stopped."""
    try:
        from napari_livecell.service import ServiceSettings, serve
    except ImportError as error:
        raise CommandError(
            f"the service needs the 'server' extra (pip install 'napari-livecell[server]'): {error}"
        ) from None
    from napari_livecell.core.models.source import ModelSource

    settings = settings_from_args(args, ServiceSettings)
    # fail before the server starts, with the reason
    source = ModelSource.parse(settings.model)
    if source.kind == "triton":
        from napari_livecell.core.models.triton import check_triton_model

        check_triton_model(str(source.location))
    elif source.kind == "service":
        raise CommandError(f"--model {source} is a service; serve a model file (or a Triton model)")
    else:
        from napari_livecell.core.models.model import check_weights_path, resolve_device
        from napari_livecell.core.models.runtime import RUNTIME_TABLE, choose_runtime

        # a missing runtime package is named now, not when the server loads the model
        weights = check_weights_path(source.path, args.runtime)
        on_cpu = args.runtime in RUNTIME_TABLE and not RUNTIME_TABLE[args.runtime].gpu
        on_cpu = on_cpu or (args.runtime == "auto" and weights.suffix.lower() == ".onnx")
        device = "cpu" if on_cpu else resolve_device(args.device)
        choose_runtime(args.runtime, weights, device)
    serve(args.host, args.port, settings)
    return 0
