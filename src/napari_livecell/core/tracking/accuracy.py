"""How right a tracking result is: the fraction of correct links against ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .frame_cells import _frame, tracks_from_labels


def _node_links(table: pd.DataFrame, graph: dict[int, list[int]]) -> set[tuple[int, int, int, int]]:
    """Links ``(t0, track0, t1, track1)`` between successive sightings and at divisions."""
    ordered = table.sort_values(["track_id", "t"])
    track = ordered["track_id"].to_numpy()
    t = ordered["t"].to_numpy()
    same = track[1:] == track[:-1]
    links = set(
        zip(t[:-1][same].tolist(), track[:-1][same].tolist(), t[1:][same].tolist(), track[1:][same].tolist())
    )
    last = ordered.groupby("track_id")["t"].max()
    first = ordered.groupby("track_id")["t"].min()
    for daughter, parents in graph.items():
        for mother in parents:
            if mother in last.index and daughter in first.index:
                links.add((int(last[mother]), int(mother), int(first[daughter]), int(daughter)))
    return links


def _match_to_truth(true_labels, pred_labels, min_iou: float = 0.5) -> dict[tuple[int, int], int]:
    """``(t, predicted id) -> true id`` for cells overlapping a true cell with IoU > ``min_iou``.

    IoU above 0.5 makes the match one-to-one; computed frame by frame from the
    joint histogram of the two label frames.
    """
    matches: dict[tuple[int, int], int] = {}
    for t in range(true_labels.shape[0]):
        truth = _frame(true_labels, t).ravel().astype(np.int64)
        pred = _frame(pred_labels, t).ravel().astype(np.int64)
        both = (truth > 0) & (pred > 0)
        pairs, overlap = np.unique(np.stack([truth[both], pred[both]]), axis=1, return_counts=True)
        true_area = np.bincount(truth)
        pred_area = np.bincount(pred)
        iou = overlap / (true_area[pairs[0]] + pred_area[pairs[1]] - overlap)
        for true_id, pred_id in pairs[:, iou > min_iou].T.tolist():
            matches[(t, pred_id)] = true_id
    return matches


def link_accuracy(
    true_labels,
    true_graph: dict[int, list[int]],
    pred_labels,
    pred_graph: dict[int, list[int]],
) -> dict[str, float]:
    """Fraction of correct links of a tracking result against ground truth.

    A link joins two sightings of a cell (the same track in successive
    frames, or a mother's last sighting and a daughter's first). Predicted
    cells are matched to true cells by IoU > 0.5 in each frame; a true link
    is found when both its ends are matched and the predicted cells are
    linked.

    Parameters
    ----------
    true_labels, pred_labels : array-like
        ``(T, Y, X)`` stacks whose ids are track ids.
    true_graph, pred_graph : dict of int to list of int
        ``{daughter: [mother]}`` of each.

    Returns
    -------
    dict
        ``recall`` (true links found / true links: "fraction of correct
        links"), ``precision`` (predicted links that are true / predicted
        links), ``links``, ``divisions`` (true divisions), ``divisions_found``
        (true divisions whose mother -> daughter links were all found),
        ``divisions_predicted``.
    """
    true_table = tracks_from_labels(true_labels)
    pred_table = tracks_from_labels(pred_labels)
    true_links = _node_links(true_table, true_graph)
    pred_links = _node_links(pred_table, pred_graph)
    match = _match_to_truth(true_labels, pred_labels)
    mapped = set()
    for t0, a, t1, b in pred_links:
        if (t0, a) in match and (t1, b) in match:
            mapped.add((t0, match[(t0, a)], t1, match[(t1, b)]))
    found = true_links & mapped
    true_divisions: dict[int, set] = {}
    for daughter, parents in true_graph.items():
        true_divisions.setdefault(parents[0], set()).add(daughter)
    division_links = {(t0, a, t1, b) for (t0, a, t1, b) in true_links if a != b}
    divisions_found = sum(
        all(link in found for link in division_links if link[1] == mother) for mother in true_divisions
    )
    return {
        "recall": len(found) / max(len(true_links), 1),
        "precision": len(found) / max(len(pred_links), 1),
        "links": float(len(true_links)),
        "divisions": float(len(true_divisions)),
        "divisions_found": float(divisions_found),
        "divisions_predicted": float(len({p[0] for p in pred_graph.values()})),
    }
