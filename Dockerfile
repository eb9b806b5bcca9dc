# napari-livecell HTTP service: POST an image, get it back with every cell outlined.
# The default image is the base install plus the `server` extra: the shipped ONNX model on ONNX
# Runtime, no PyTorch (docs/runtime.md). `triton` stays out of the default image: its client goes
# through Ultralytics, so it pulls the `train` extra (PyTorch); docker-compose.yml builds the GPU
# and Triton variants with EXTRAS and TORCH_INDEX.
FROM python:3.11-slim

# extras installed beside the base package; a variant with `train` or `triton` needs TORCH_INDEX
ARG EXTRAS=server
# PyTorch wheels to install first (say https://download.pytorch.org/whl/cpu or .../cu124); empty: none
ARG TORCH_INDEX=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NAPARI_LIVECELL_HOME=/var/lib/napari-livecell YOLO_OFFLINE=1

RUN apt-get update && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*
RUN if [ -n "${TORCH_INDEX}" ]; then pip install torch torchvision --index-url "${TORCH_INDEX}"; fi

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install ".[${EXTRAS}]" && useradd --create-home livecell \
    && mkdir -p /var/lib/napari-livecell && chown livecell /var/lib/napari-livecell
USER livecell

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/health || exit 1
CMD ["napari-livecell", "serve", "--host", "0.0.0.0", "--port", "8000"]
