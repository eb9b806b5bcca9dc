"""Training.

Datasets from corrections, the training pipeline, synthetic data, curation, dataset review.
"""
