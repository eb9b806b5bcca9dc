"""Code that runs outside this package's process: the model inside a Triton Inference Server.

``export --triton`` copies :mod:`.triton_model` into a Triton model repository,
where Triton's Python backend runs it in Triton's own environment (numpy and
ONNX Runtime, nothing of napari-livecell).
"""
