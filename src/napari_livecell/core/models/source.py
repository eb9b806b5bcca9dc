"""Where a model comes from, parsed once at the edge: a weights file, a service, a Triton model.

A user names a model with one string (``--model``, the Segment dock's
field, the service's setting). :func:`ModelSource.parse` reads it once; the
code after it asks ``source.kind`` instead of looking at the string again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SourceKind = Literal["file", "service", "triton"]
TRITON_SCHEME = "triton+http"
SERVICE_SCHEMES = ("http://", "https://")


@dataclass(frozen=True)
class ModelSource:
    """A parsed model choice.

    Attributes
    ----------
    kind : str
        ``"file"`` (weights on disk; ``location`` ``None`` is the shipped
        default model), ``"service"`` (a napari-livecell HTTP service that
        segments whole frames) or ``"triton"`` (a network on a Triton server,
        ``triton+http://HOST:PORT/MODEL``).
    location : str or None
        The path or address as given (``~`` not expanded).
    """

    kind: SourceKind
    location: str | None = None

    @classmethod
    def parse(cls, value: str | os.PathLike | ModelSource | None) -> ModelSource:
        """The source that ``value`` names (a :class:`ModelSource` is returned unchanged).

        Examples
        --------
        >>> ModelSource.parse("http://lab:8000").kind
        'service'
        >>> ModelSource.parse("triton+http://lab:8001/livecell").kind
        'triton'
        >>> ModelSource.parse("cells.onnx").kind
        'file'
        """
        if isinstance(value, ModelSource):
            return value
        if value is None:
            return cls("file")
        if isinstance(value, os.PathLike):
            return cls("file", os.fspath(value))
        text = str(value).strip()
        if not text:
            return cls("file")
        if text.startswith(f"{TRITON_SCHEME}://"):
            return cls("triton", text)
        if text.startswith(SERVICE_SCHEMES):
            return cls("service", text)
        return cls("file", text)

    @property
    def is_file(self) -> bool:
        """Whether the network runs here, from a weights file."""
        return self.kind == "file"

    @property
    def path(self) -> Path | None:
        """The weights file (``None``: the shipped default, or not a file source)."""
        if self.kind != "file" or self.location is None:
            return None
        return Path(self.location).expanduser()

    def __str__(self) -> str:
        return self.location or "the default model"
