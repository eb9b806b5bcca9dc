"""Inference.

Frame input, the forward pass, mask decoding, tiling, pixel-size resampling, the run over frames.
"""
