"""A real uvicorn serving the service on 127.0.0.1 (an ephemeral port), as ``serve`` configures it."""

import os
import threading
import time


def start_service(settings):
    """Start the service in a thread; return ``(uvicorn server, thread, base URL)``."""
    import uvicorn

    from napari_livecell.service import create_app, uvicorn_config

    # LOG_LEVEL is the production server's log knob: quiet unless the run sets it
    quiet = "LOG_LEVEL" not in os.environ
    if quiet:
        os.environ["LOG_LEVEL"] = "warning"
    try:
        config = uvicorn_config(create_app(settings), "127.0.0.1", 0, settings)
    finally:
        if quiet:
            del os.environ["LOG_LEVEL"]
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.time() + 120
    while not instance.started and time.time() < deadline:
        time.sleep(0.05)
    assert instance.started, "uvicorn did not start"
    port = instance.servers[0].sockets[0].getsockname()[1]
    return instance, thread, f"http://127.0.0.1:{port}"


def stop_service(instance, thread) -> None:
    """Ask the server to exit and wait for its thread."""
    instance.should_exit = True
    thread.join(timeout=10)
