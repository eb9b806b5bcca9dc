# napari-livecell HTTP service: POST an image, get it back with every cell outlined.
# CPU torch by default (small image); see docker-compose.yml for the GPU variant.
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NAPARI_LIVECELL_HOME=/var/lib/napari-livecell YOLO_OFFLINE=1

RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 curl \
    && rm -rf /var/lib/apt/lists/*
RUN pip install torch torchvision --index-url ${TORCH_INDEX}

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[server,triton]" && useradd --create-home livecell \
    && mkdir -p /var/lib/napari-livecell && chown livecell /var/lib/napari-livecell
USER livecell

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/health || exit 1
CMD ["napari-livecell", "serve", "--host", "0.0.0.0", "--port", "8000"]
