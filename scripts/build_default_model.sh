#!/usr/bin/env bash
# Rebuild the shipped default model from scratch and measure it on held-out data.
# ~45 minutes on 2 CPU cores; nothing is downloaded.
set -euo pipefail
out=${1:-runs/default-model}

napari-livecell synth --out "$out/synth-train" --n 150 --seed 1
napari-livecell train --data "$out/synth-train/annotations.json" --images "$out/synth-train/images" \
    --crop 320 --imgsz 320 --epochs 15 --batch 8 --seed 0 --model yolov8n-seg.yaml --out "$out/train"

# held out: 30 fresh images (another seed), COCO protocol with maxDets 2000
napari-livecell synth --out "$out/heldout" --n 30 --seed 999
for conf in 0.001 0.4; do
    napari-livecell segment "$out/heldout/images" --model "$out/train/best.pt" --conf "$conf" \
        --out "$out/heldout-pred-$conf"
    napari-livecell evaluate --gt "$out/heldout/annotations.json" \
        --pred "$out/heldout-pred-$conf/predictions.json"
done

# the form the base install runs: a dynamic-shape float32 ONNX export beside the .pt (docs/runtime.md);
# copy both into src/napari_livecell/models/ as livecell-synth-yolov8n-seg.{pt,onnx}
python -c "import sys; from pathlib import Path; from napari_livecell.core.models.runtime import write_onnx; \
write_onnx(Path(sys.argv[1]), Path(sys.argv[2]))" "$out/train/best.pt" "$out/train/best.onnx"
