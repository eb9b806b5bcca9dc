"""File formats.

COCO json, YOLO segmentation txt and its dataset layout, ImageJ ROI sets, Cell Tracking Challenge
folders, conversions.
"""
