"""A model served by a Triton Inference Server, used like a local one.

The model is named by a spec ``triton+http://HOST:PORT/MODEL`` (made by
:func:`triton_spec` from ``--triton URL --triton-model NAME``) wherever weights
are accepted. At load time the server's health and the model's inputs,
outputs and task are checked, each failure in one line; then Ultralytics'
own Triton client runs the network over the KServe v2 HTTP protocol: the
letterboxed float32 frame goes in, the raw head outputs (boxes, scores,
mask coefficients, prototypes) come back, and the same post-processing as for
a local model makes the :class:`~napari_livecell.core.segmentation.Segmentation`.
"""

from __future__ import annotations

import ast
import threading
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from napari_livecell.core.errors import ModelError

SCHEME = "triton+http"
CONNECT_TIMEOUT_S = 5.0
INFER_TIMEOUT_S = 120.0


class TritonUnavailable(OSError):
    """The Triton server does not answer (stopped, unreachable): worth retrying later."""


def triton_spec(url: str, model: str) -> str:
    """``triton+http://host:port/model`` from a server URL (``http://host:port`` or ``host:port``)."""
    if not model or "/" in model:
        raise ModelError(f"--triton-model must be a model name on the server, not {model!r}")
    address = url.strip().rstrip("/")
    for prefix in ("http://", f"{SCHEME}://"):
        address = address.removeprefix(prefix)
    if not address or "/" in address:
        raise ModelError(f"--triton must be the server's address (http://HOST:PORT), not {url!r}")
    return f"{SCHEME}://{address}/{model}"


def is_triton_spec(weights: object) -> bool:
    """Whether ``weights`` names a model on a Triton server (:class:`.source.ModelSource`)."""
    from .source import ModelSource

    return isinstance(weights, str | ModelSource) and ModelSource.parse(weights).kind == "triton"


def parse_triton_spec(spec: str) -> tuple[str, str]:
    """``(host:port, model)`` of a spec."""
    parts = urlsplit(spec)
    model = parts.path.strip("/")
    if parts.scheme != SCHEME or not parts.netloc or not model or "/" in model:
        raise ModelError(f"{spec!r} is not a Triton model ({SCHEME}://HOST:PORT/MODEL)")
    return parts.netloc, model


def _client(address: str):
    try:
        import tritonclient.http as triton_http
    except ImportError:
        raise ModelError(
            "a Triton model needs the Triton client: pip install 'napari-livecell[triton]'"
        ) from None
    return triton_http.InferenceServerClient(
        url=address, connection_timeout=CONNECT_TIMEOUT_S, network_timeout=INFER_TIMEOUT_S
    )


def check_triton_model(spec: str) -> dict:
    """Check that the server is up and serves a YOLO-seg model under that name.

    Returns
    -------
    dict
        The model's Ultralytics metadata (task, names, stride, imgsz) from
        its config, plus ``"dynamic"``: whether it takes any frame size.

    Raises
    ------
    TritonUnavailable
        The server does not answer.
    ModelError
        The model is missing or not ready, or its inputs, outputs or task do
        not fit (the message says which).
    """
    address, model = parse_triton_spec(spec)
    client = _client(address)
    try:
        live = client.is_server_live()
    except Exception as error:  # connection refused, timeout, DNS...: the client raises many types
        raise TritonUnavailable(f"Triton at http://{address} does not answer: {_one_line(error)}") from None
    if not live:
        raise TritonUnavailable(f"Triton at http://{address} is not live")
    try:
        ready = client.is_model_ready(model)
        index = client.get_model_repository_index() if not ready else []
        metadata = client.get_model_metadata(model) if ready else {}
        config = client.get_model_config(model) if ready else {}
    except Exception as error:
        raise TritonUnavailable(f"Triton at http://{address}: {_one_line(error)}") from None
    if not ready:
        names = sorted(entry.get("name", "?") for entry in index)
        raise ModelError(
            f"Triton at http://{address} has no ready model {model!r} (it has: {', '.join(names) or 'none'})"
        )
    inputs, outputs = metadata.get("inputs", []), metadata.get("outputs", [])
    if len(inputs) != 1 or inputs[0].get("datatype") != "FP32" or len(inputs[0].get("shape", [])) != 4:
        raise ModelError(
            f"Triton model {model!r} takes {_describe(inputs)}; a YOLO-seg export takes one FP32 image batch"
        )
    if sorted(output.get("name") for output in outputs) != ["output0", "output1"]:
        raise ModelError(
            f"Triton model {model!r} returns {_describe(outputs)}; a YOLO-seg export returns "
            "output0 (boxes, scores, mask coefficients) and output1 (mask prototypes)"
        )
    text = config.get("parameters", {}).get("metadata", {}).get("string_value", "")
    try:
        info = ast.literal_eval(text) if text else {}
    except (ValueError, SyntaxError):
        info = {}
    task = info.get("task", "segment")
    if task != "segment":
        raise ModelError(
            f"Triton model {model!r} is a {task!r} model; a segmentation (YOLO-seg) model is needed"
        )
    info["dynamic"] = -1 in inputs[0]["shape"][2:]
    return info


def connect_triton_model(spec: str) -> tuple:
    """Check the model on its server, then make the Ultralytics model that runs it there.

    Returns
    -------
    tuple
        ``(yolo, class names, training image size or None, dynamic)``: what
        :func:`napari_livecell.core.models.model.load_model` makes its
        :class:`~napari_livecell.core.models.model.LoadedModel` from; ``dynamic``
        says whether the model takes frames of any size.
    """
    from napari_livecell.core.models.offline import import_ultralytics

    info = check_triton_model(spec)
    address, model = parse_triton_spec(spec)
    import_ultralytics()
    from ultralytics import YOLO

    _use_thread_safe_client()
    yolo = YOLO(f"http://{address}/{model}", task="segment")
    names = {int(k): str(v) for k, v in (info.get("names") or {0: "cell"}).items()}
    imgsz = info.get("imgsz")
    size = int(max(imgsz)) if isinstance(imgsz, (list, tuple)) and imgsz else None
    return yolo, names, size, info["dynamic"]


def _use_thread_safe_client() -> None:
    """Make Ultralytics' Triton backend use :class:`ThreadSafeTritonModel` (idempotent)."""
    import ultralytics.utils.triton

    # Any: its class is replaced in place
    ultralytics_triton: Any = ultralytics.utils.triton
    if not issubclass(ultralytics_triton.TritonRemoteModel, _ThreadSafeBase):
        ultralytics_triton.TritonRemoteModel = _thread_safe_class(ultralytics_triton.TritonRemoteModel)


class _ThreadSafeBase:
    """Marker: the Triton client class is ours already."""


def _thread_safe_class(base: type) -> type:
    class ThreadSafeTritonModel(base, _ThreadSafeBase):
        """Ultralytics' Triton client with one HTTP connection per thread.

        tritonclient's HTTP client runs on gevent, whose connections belong to
        the thread that made them ("Cannot switch to a different thread" when
        another uses them); the widget's workers and the service's threads
        each run inference. A failed call drops its thread's connection, so
        the next one reconnects: a restarted server is picked up again.
        """

        def __init__(self, url: str, endpoint: str = "", scheme: str = "") -> None:
            super().__init__(url, endpoint, scheme)
            self._connections = threading.local()

        def __call__(self, *inputs: np.ndarray) -> list[np.ndarray]:
            client = getattr(self._connections, "client", None)
            if client is None:
                client = self._connections.client = _client(self.url)
            requests = []
            for name, data_type, array in zip(self.input_names, self.input_formats, inputs):
                request = self.InferInput(name, list(array.shape), data_type.replace("TYPE_", ""))
                request.set_data_from_numpy(
                    np.ascontiguousarray(array, dtype=np.dtype(_NUMPY_TYPES[data_type]))
                )
                requests.append(request)
            outputs = [self.InferRequestedOutput(name) for name in self.output_names]
            try:
                answer = client.infer(model_name=self.endpoint, inputs=requests, outputs=outputs)
            except Exception as error:
                self._connections.client = None
                if triton_is_down(error):
                    raise TritonUnavailable(
                        f"Triton at http://{self.url} does not answer: {_one_line(error)}"
                    ) from None
                raise
            # copies: the client's arrays are read-only views of its buffer, torch wants to own them
            return [np.array(answer.as_numpy(name), dtype=inputs[0].dtype) for name in self.output_names]

    return ThreadSafeTritonModel


_NUMPY_TYPES = {"TYPE_FP32": "float32", "TYPE_FP16": "float16", "TYPE_UINT8": "uint8"}


def triton_is_down(error: BaseException) -> bool:
    """Whether an error raised while running a Triton model means the server stopped answering."""
    if isinstance(error, TritonUnavailable | ConnectionError | TimeoutError):
        return True
    module = type(error).__module__ or ""
    text = str(error).lower()
    return module.startswith(("tritonclient", "geventhttpclient", "gevent")) or "connection refused" in text


def _describe(tensors: list[dict]) -> str:
    if not tensors:
        return "nothing"
    return ", ".join(f"{t.get('name')} {t.get('datatype')} {t.get('shape')}" for t in tensors)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
