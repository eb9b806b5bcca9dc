"""Models.

Loading weights offline and safely, the runtimes (PyTorch, ONNX Runtime, OpenVINO, Triton), export.
"""
