"""Start the Triton Inference Server bundled in the ``nvidia-pytriton`` wheel on a model repository.

Run it with the Python of the environment pytriton is installed in: its own
virtual environment, as Triton would be its own container in a deployment
(pytriton pins numpy < 2; ``scripts/setup_triton.sh`` makes it)::

    .triton-venv/bin/python scripts/triton_server.py REPOSITORY [--port 8000]

The repository comes from ``napari-livecell export W --triton REPOSITORY``.
The server replaces this process (stopping it stops the server), listens on
HTTP only (KServe v2 protocol) on 127.0.0.1 unless told otherwise, and loads
every model of the repository. Standard library only, so that it runs in
Triton's environment without this package installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path


def prepare_server(workspace: Path) -> tuple[Path, dict[str, str]]:
    """Copy the bundled server with the Python-backend stub of this interpreter; return it and its env."""
    try:
        import pytriton
        from pytriton.utils.distribution import get_libs_path, get_stub_path
    except ImportError:
        sys.exit("nvidia-pytriton is not installed for this Python: run scripts/setup_triton.sh first")
    bundled = Path(pytriton.__file__).parent / "tritonserver"
    server = workspace / "tritonserver"
    if not server.exists():
        shutil.copytree(bundled, server, ignore=shutil.ignore_patterns("python_backend_stubs"))
    # the Python backend runs models through a stub built for one Python version: this one's
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = get_stub_path(version)
    if not Path(stub).exists():
        sys.exit(f"the bundled Triton has no Python backend stub for Python {version}")
    shutil.copy(stub, server / "backends" / "python" / "triton_python_backend_stub")
    env = os.environ.copy()
    # the stub links libpython of its version: this interpreter's own, wherever it was built
    python_library = sysconfig.get_config_var("LIBDIR")
    paths = [str(get_libs_path()), python_library, env.get("LD_LIBRARY_PATH")]
    env["LD_LIBRARY_PATH"] = ":".join(filter(None, paths))
    # the stub finds numpy and onnxruntime through this environment's interpreter
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return server, env


def main() -> None:
    """Parse the arguments, unpack the server, and become it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repository", type=Path, help="Triton model repository (export --triton)")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (default: 8000)")
    parser.add_argument("--workspace", type=Path, default=None, help="unpack the server here")
    args = parser.parse_args()
    if not args.repository.is_dir() or not any(args.repository.glob("*/config.pbtxt")):
        sys.exit(f"{args.repository} is not a Triton model repository (no <model>/config.pbtxt)")
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="napari-livecell-triton-"))
    server, env = prepare_server(workspace)
    command = [
        str(server / "bin" / "tritonserver"),
        f"--model-repository={args.repository.resolve()}",
        f"--backend-directory={server / 'backends'}",
        f"--http-address={args.host}",
        f"--http-port={args.port}",
        "--allow-grpc=false",
        "--allow-metrics=false",
        "--log-verbose=0",
        "--exit-timeout-secs=5",  # in-flight requests get 5 s when the server is stopped
    ]
    print(f"Triton on http://{args.host}:{args.port} serving {args.repository}", flush=True)
    os.execve(command[0], command, env)


if __name__ == "__main__":
    main()
