"""A dataset under review: which images there are, their state, and the order to review them in.

The index is a small SQLite database (``review.db``, WAL mode) beside one COCO
json per image (``cells/<name>.json``). Each image is one row, updated on its
own; every change runs in a write transaction (``BEGIN IMMEDIATE``), so one
writer at a time changes a dataset, however many napari windows or processes
have it open (docs/review.md says why SQLite). Each cells file also carries
its image's own record (a ``napari_livecell_review`` block: image path,
state, who saved it), so a damaged index is rebuilt from the files, never
reset to "unsegmented", and a model's result is written only where an image
has no cells file yet: it never replaces cells a person saved.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from napari_livecell.core.atomic import UnsafeNameError, child_path, safe_component

DB_NAME = "review.db"
LEGACY_INDEX = "dataset.json"  # the index of earlier versions: migrated, then kept as dataset.json.v1
CELLS_FOLDER = "cells"
STATES = ("to review", "in progress", "done")
NEAR_THRESHOLD = 0.1  # a score within this of the confidence threshold is "near" it
RECORD_KEY = "napari_livecell_review"  # each cells file's own record of its image
BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another window's write to end
SCHEMA_VERSION = 2


class ReviewError(ValueError):
    """A dataset folder or index that cannot be used, with the reason."""


class ReviewConflict(ReviewError):
    """An image saved from elsewhere since it was opened here: this save would replace it."""


@dataclass
class ReviewEntry:
    """One image of the dataset.

    Attributes
    ----------
    name : str
        The image's file stem: names its layers and its cells file.
    image : str
        Path of the image file.
    state : str
        One of :data:`STATES`.
    segmented : bool
        Whether cells exist for it (predicted or annotated).
    n_cells, mean_score, near_threshold, unannotated : number
        The review signal: cell count, mean model score, share of cells
        scored near the threshold, confident cells no annotation covers.
    priority : float
        Higher first in the queue.
    origin : str
        Who saved its cells last: ``"model"``, ``"person"`` or ``""`` (none yet, or unknown).
    revision : int
        How many times its cells were saved (a save from a stale view is refused).
    """

    name: str
    image: str
    state: str = "to review"
    segmented: bool = False
    n_cells: int = 0
    mean_score: float = float("nan")
    near_threshold: float = 0.0
    unannotated: float = 0.0
    priority: float = 0.0
    origin: str = ""
    revision: int = 0


COLUMNS = tuple(f.name for f in fields(ReviewEntry))
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    name TEXT PRIMARY KEY, image TEXT NOT NULL, state TEXT NOT NULL, segmented INTEGER NOT NULL,
    n_cells INTEGER NOT NULL, mean_score REAL, near_threshold REAL NOT NULL, unannotated REAL NOT NULL,
    priority REAL NOT NULL, origin TEXT NOT NULL, revision INTEGER NOT NULL,
    position INTEGER NOT NULL, mtime_ns INTEGER NOT NULL DEFAULT 0
);
"""


def review_priority(scores: np.ndarray, conf: float, unannotated_share: float = 0.0) -> dict:
    """How much an image likely needs review, from its cells' scores.

    Low mean score, many cells near the confidence threshold and confident
    cells missing from existing annotations (the ``curate`` signal) all raise it.
    """
    scores = np.asarray(scores, dtype=float)
    scores = scores[~np.isnan(scores)]
    mean = float(scores.mean()) if scores.size else float("nan")
    near = float(np.mean(scores < conf + NEAR_THRESHOLD)) if scores.size else 0.0
    priority = (1.0 - (mean if scores.size else 1.0)) + near + float(unannotated_share)
    return {
        "n_cells": int(scores.size),
        "mean_score": mean,
        "near_threshold": near,
        "unannotated": float(unannotated_share),
        "priority": priority,
    }


def check_entry(entry: ReviewEntry, where: str) -> ReviewEntry:
    """``entry`` when its fields can be used (its name is a file name, its state known)."""
    try:
        safe_component(entry.name, "image name")
    except UnsafeNameError as error:
        raise ReviewError(f"{where}: {error}") from None
    if entry.state not in STATES:
        raise ReviewError(f"{where}: image {entry.name!r} has an unknown state {entry.state!r}")
    if not isinstance(entry.image, str) or not entry.image:
        raise ReviewError(f"{where}: image {entry.name!r} names no image file")
    for key in ("n_cells", "mean_score", "near_threshold", "unannotated", "priority"):
        value = getattr(entry, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ReviewError(f"{where}: image {entry.name!r} has {key} {value!r}, not a number")
    return entry


class ReviewIndex:
    """The index of a dataset under review: a SQLite database of one row per image.

    Reads come from the database each time (another window may have changed
    it); writes change one image's row in a write transaction.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self._local = threading.local()
        self.rebuilt_because = ""  # why the index was rebuilt from the cells files on opening, if it was

    # storage -------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The index file."""
        return self.folder / DB_NAME

    def cells_path(self, name: str) -> Path:
        """The COCO json holding one image's cells (a name that would leave the folder is refused)."""
        try:
            return child_path(self.folder / CELLS_FOLDER, name, ".json", "image name")
        except UnsafeNameError as error:
            raise ReviewError(str(error)) from None

    def _connection(self) -> sqlite3.Connection:
        """The calling thread's connection (opening one costs more than most queries)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            try:
                connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
                # in WAL mode a commit survives a crash of the process without a sync each time
                connection.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as error:
                raise ReviewError(f"cannot open {self.path}: {error}") from None
            self._local.connection = connection
        return connection

    def close(self) -> None:
        """Close this thread's connection (others close with their threads)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    @contextlib.contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection; with ``write``, inside a transaction that holds the dataset's one write lock."""
        connection = self._connection()
        try:
            if write:
                connection.execute("BEGIN IMMEDIATE")
            yield connection
            if write:
                connection.execute("COMMIT")
        except BaseException:
            if write and connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _rows(self, where: str = "", parameters: tuple = ()) -> list[ReviewEntry]:
        query = f"SELECT {', '.join(COLUMNS)} FROM images {where} ORDER BY position"
        with self._db() as db:
            rows = db.execute(query, parameters).fetchall()
        return [_entry(row) for row in rows]

    def _meta(self, key: str, default: str) -> str:
        with self._db() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    # reading -------------------------------------------------------------------
    @property
    def entries(self) -> list[ReviewEntry]:
        """Every image, in the order the dataset lists them (a snapshot)."""
        return self._rows()

    @property
    def categories(self) -> dict[int, str]:
        """Class id -> name of the dataset's cells."""
        return {int(k): str(v) for k, v in json.loads(self._meta("categories", '{"0": "cell"}')).items()}

    @property
    def source(self) -> str:
        """The folder of images or the COCO json the review was made from."""
        return self._meta("source", "")

    def entry(self, name: str) -> ReviewEntry:
        """The entry of an image by name."""
        rows = self._rows("WHERE name = ?", (name,))
        if not rows:
            raise ReviewError(f"no image named {name!r} in this dataset")
        return rows[0]

    def queue(self) -> list[str]:
        """Image names in review order: unfinished first, then by priority, then by name."""
        entries = self.entries
        done = [e for e in entries if e.state == "done"]
        waiting = [e for e in entries if e.state != "done"]
        waiting.sort(key=lambda e: (-e.priority, e.name))
        done.sort(key=lambda e: e.name)
        return [e.name for e in waiting + done]

    # writing -------------------------------------------------------------------
    def set_state(self, name: str, state: str) -> None:
        """Change an image's state, in the index and in its cells file's own record."""
        if state not in STATES:
            raise ReviewError(f"unknown state {state!r}: use one of {', '.join(STATES)}")
        path = self.cells_path(name)
        with self._db(write=True) as db:
            entry = self._locked_entry(db, name)
            mtime = 0
            if path.is_file():
                coco = _read_cells(path)
                if coco is not None:
                    coco[RECORD_KEY] = {**_record(coco), "image": entry.image, "state": state}
                    mtime = _write_cells(path, coco)
            db.execute(
                "UPDATE images SET state = ?, mtime_ns = CASE WHEN ? THEN ? ELSE mtime_ns END WHERE name = ?",
                (state, mtime > 0, mtime, name),
            )

    def set_categories(self, categories: dict[int, str]) -> None:
        """Store the dataset's class names."""
        text = json.dumps({str(k): str(v) for k, v in categories.items()})
        with self._db(write=True) as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('categories', ?)", (text,))

    def write_cells(
        self,
        name: str,
        coco: dict,
        signal: dict,
        origin: str,
        expected_revision: int | None = None,
        replace_unopened: bool = False,
    ) -> int | None:
        """Save one image's cells (a COCO dict) with its own record, and its row, as one step.

        Parameters
        ----------
        name : str
            The image.
        coco : dict
            Its cells (the file's record is added here).
        signal : dict
            Its review signal (:func:`review_priority`).
        origin : str
            ``"model"``: written only when the image has no cells file (a
            model's result never replaces saved cells; the file's own record
            then goes into the index instead). ``"person"``: always written,
            unless ``expected_revision`` is stale.
        expected_revision : int, optional
            The image's revision when its cells were read for editing: a save
            from a view older than the saved cells raises :class:`ReviewConflict`.
        replace_unopened : bool
            With ``origin="model"``: also replace a model's cells of an image
            nobody opened (:func:`unopened_prediction`: a better model's
            result); a person's cells are never replaced.

        Returns
        -------
        int or None
            The new revision, or None when a model's result was not written.
        """
        path = self.cells_path(name)
        with self._db(write=True) as db:
            entry = self._locked_entry(db, name)
            if origin == "model" and path.exists():
                if not (replace_unopened and unopened_prediction(db, entry, path)):
                    self._sync_row(db, entry, path)
                    return None
            if expected_revision is not None and entry.revision != expected_revision:
                raise ReviewConflict(
                    f"{name} was saved from another window since it was opened here (revision "
                    f"{entry.revision}, not {expected_revision}): this edit is not saved; open {name} "
                    "again to see the saved cells"
                )
            revision = entry.revision + 1
            record = {"image": entry.image, "state": entry.state, "origin": origin, "revision": revision}
            coco[RECORD_KEY] = record
            mtime = _write_cells(path, coco)
            values = {**signal, "segmented": True, "origin": origin, "revision": revision, "mtime_ns": mtime}
            assignments = ", ".join(f"{key} = ?" for key in values)
            db.execute(f"UPDATE images SET {assignments} WHERE name = ?", (*values.values(), name))
        return revision

    def adopt_cells_file(self, name: str) -> bool:
        """Take an image's existing cells file (its own record) into its row; whether there was one."""
        path = self.cells_path(name)
        with self._db(write=True) as db:
            entry = self._locked_entry(db, name)
            if not path.exists():
                return False
            self._sync_row(db, entry, path)
        return True

    def _locked_entry(self, db: sqlite3.Connection, name: str) -> ReviewEntry:
        row = db.execute(f"SELECT {', '.join(COLUMNS)} FROM images WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise ReviewError(f"no image named {name!r} in this dataset")
        return _entry(row)

    def _sync_row(self, db: sqlite3.Connection, entry: ReviewEntry, path: Path) -> None:
        """Take an existing cells file's own record into the index (it is newer than the row)."""
        coco = _read_cells(path)
        if coco is None:  # unreadable: counted as cells a person may have made, never overwritten
            db.execute("UPDATE images SET segmented = 1 WHERE name = ?", (entry.name,))
            return
        record = _record(coco)
        state = record.get("state") if record.get("state") in STATES else entry.state
        if not record and state == "to review" and _edited(coco):
            state = "in progress"
        signal = cells_signal(coco, entry.unannotated)
        written = record.get("revision")
        revision = written if isinstance(written, int) else entry.revision
        values = {
            **signal,
            "segmented": True,
            "state": state,
            "origin": str(record.get("origin", "")),
            "revision": max(int(revision), entry.revision),
            "mtime_ns": path.stat().st_mtime_ns,
        }
        assignments = ", ".join(f"{key} = ?" for key in values)
        db.execute(f"UPDATE images SET {assignments} WHERE name = ?", (*values.values(), entry.name))

    def reconcile(self) -> int:
        """Take into the index every cells file changed behind its back (a save cut short); the count."""
        with self._db() as db:
            rows = db.execute("SELECT name, mtime_ns FROM images").fetchall()
        stale = []
        for name, mtime in rows:
            path = self.cells_path(name)
            with contextlib.suppress(OSError):
                if path.stat().st_mtime_ns != mtime:
                    stale.append(name)
        if stale:
            with self._db(write=True) as db:
                for name in stale:
                    self._sync_row(db, self._locked_entry(db, name), self.cells_path(name))
        return len(stale)

    # making --------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        folder: str | os.PathLike,
        entries: list[ReviewEntry],
        source: str = "",
        categories: dict[int, str] | None = None,
    ) -> ReviewIndex:
        """A new index database holding ``entries`` (an existing one is replaced)."""
        index = cls(folder)
        index.folder.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{index.path}{suffix}").unlink(missing_ok=True)
        with index._db() as db:
            _set_wal(db)
            db.executescript(_SCHEMA)
        with index._db(write=True) as db:
            db.execute("INSERT INTO meta VALUES ('format', 'napari-livecell review dataset')")
            db.execute("INSERT INTO meta VALUES ('version', ?)", (str(SCHEMA_VERSION),))
            db.execute("INSERT INTO meta VALUES ('source', ?)", (str(source),))
            text = json.dumps({str(k): str(v) for k, v in (categories or {0: "cell"}).items()})
            db.execute("INSERT INTO meta VALUES ('categories', ?)", (text,))
            placeholders = ", ".join("?" for _ in (*COLUMNS, "position"))
            db.executemany(
                f"INSERT INTO images ({', '.join(COLUMNS)}, position) VALUES ({placeholders})",
                [(*_row_values(check_entry(e, "new index")), i) for i, e in enumerate(entries)],
            )
        return index

    @classmethod
    def load(cls, folder: str | os.PathLike) -> ReviewIndex:
        """Open a dataset folder's index: migrated from ``dataset.json``, rebuilt if damaged.

        Raises
        ------
        ReviewError
            The folder is no review dataset, or its index names an image by a
            name that cannot be a file name.
        """
        folder = Path(folder)
        index = cls(folder)
        if not index.path.is_file():
            if not (folder / LEGACY_INDEX).is_file():
                raise ReviewError(f"{folder} holds no {DB_NAME}: not a review dataset")
            return migrate_legacy(folder)
        problem = index._check()
        if problem:
            index.close()  # before the damaged file is moved aside
            return rebuild(folder, reason=problem)
        index.reconcile()
        return index

    def _check(self) -> str:
        """Why the database cannot be used ("" when it can)."""
        try:
            with self._db() as db:
                result = db.execute("PRAGMA quick_check").fetchone()
                if result is None or result[0] != "ok":
                    return f"{DB_NAME} is damaged ({result[0] if result else 'no answer'})"
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if not {"meta", "images"} <= tables:
                    return f"{DB_NAME} lacks its tables"
                rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM images").fetchall()
        except (sqlite3.DatabaseError, ReviewError) as error:
            return f"{DB_NAME} is damaged ({error})"
        for row in rows:
            try:
                check_entry(_entry(row), DB_NAME)
            except (ReviewError, TypeError, ValueError) as error:
                return str(error)
        return ""


def _entry(row: tuple) -> ReviewEntry:
    values = dict(zip(COLUMNS, row, strict=True))
    values["segmented"] = bool(values["segmented"])
    values["mean_score"] = float("nan") if values["mean_score"] is None else values["mean_score"]
    return ReviewEntry(**values)


def _row_values(entry: ReviewEntry) -> tuple:
    values = asdict(entry)
    values["segmented"] = int(bool(values["segmented"]))
    return tuple(values[key] for key in COLUMNS)


def _set_wal(db: sqlite3.Connection) -> None:
    """Use WAL, where readers never wait for the writer.

    Where it cannot be had (some network shares), the default rollback journal
    still gives one writer at a time and whole transactions.
    """
    with contextlib.suppress(sqlite3.Error):
        db.execute("PRAGMA journal_mode=WAL")


def _read_cells(path: Path) -> dict | None:
    """A cells file as a dict, or None when it is not readable json."""
    try:
        coco = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return coco if isinstance(coco, dict) else None


def _write_cells(path: Path, coco: dict) -> int:
    """Write a cells file atomically; its modification time (the index's check for a cut-short save)."""
    from napari_livecell.core.formats.coco import write_coco

    write_coco(path, coco)
    return path.stat().st_mtime_ns


def _record(coco: dict) -> dict:
    record = coco.get(RECORD_KEY)
    return dict(record) if isinstance(record, dict) else {}


def _edited(coco: dict) -> bool:
    """Whether a cells file holds a person's work (a status other than predicted, or an edit flag)."""
    block = coco.get("napari_livecell")
    if isinstance(block, dict) and block.get("edited"):
        return True
    annotations = coco.get("annotations") or []
    return any(isinstance(a, dict) and a.get("status", "predicted") != "predicted" for a in annotations)


def unopened_prediction(db: sqlite3.Connection, entry: ReviewEntry, path: Path) -> bool:
    """Whether an image's cells file holds only a model's result that nobody opened.

    Its row and its file's own record both say "to review" and "model", the
    file has no edit and did not change behind the index's back.
    """
    row = db.execute("SELECT mtime_ns FROM images WHERE name = ?", (entry.name,)).fetchone()
    coco = _read_cells(path)
    if coco is None or row is None or entry.state != "to review" or entry.origin != "model":
        return False
    record = _record(coco)
    unchanged = path.stat().st_mtime_ns == int(row[0])
    return (
        unchanged
        and record.get("origin") == "model"
        and record.get("state") == "to review"
        and not _edited(coco)
    )


def cells_signal(coco: dict, unannotated: float = 0.0, conf: float = 0.4) -> dict:
    """The review signal (:func:`review_priority`) of a cells file's COCO dict: its cells as saved."""
    annotations = [a for a in coco.get("annotations") or [] if isinstance(a, dict)]
    scores = [a.get("score", float("nan")) for a in annotations]
    scores = [float(s) if isinstance(s, (int, float)) else float("nan") for s in scores]
    signal = review_priority(np.asarray(scores, float), conf, unannotated)
    signal["n_cells"] = len(annotations)
    return signal


def review_folder_for(source: str | os.PathLike) -> Path:
    """Where the review of a folder of images (or of a COCO json) is kept."""
    source = Path(source)
    base = source if source.is_dir() else source.parent
    return base / "napari-livecell-review"


def is_review_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a review dataset's index (this version's or an earlier one)."""
    folder = Path(folder)
    return (folder / DB_NAME).is_file() or (folder / LEGACY_INDEX).is_file()


def source_entries(source: str | os.PathLike) -> list[ReviewEntry]:
    """Fresh entries for a folder of images, or for the images a COCO json names.

    Raises
    ------
    ReviewError
        No images found, two sharing a stem, or images of the json missing.
    """
    from napari_livecell.core.images import find_images, input_stem

    source = Path(source)
    folder = review_folder_for(source)
    if source.is_dir():
        paths = [p for p in find_images([str(source)]) if folder not in p.parents]
    elif source.suffix.lower() == ".json":
        from napari_livecell.core.formats.coco import load_coco

        coco = load_coco(source)
        images_dir = source.parent / "images" if (source.parent / "images").is_dir() else source.parent
        names = [Path(str(entry.get("file_name", ""))).name for entry in coco["images"]]
        paths = [images_dir / name for name in names if name]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise ReviewError(
                f"{len(missing)} image(s) of {source.name} not found in {images_dir}: {missing[0]}"
            )
    else:
        raise ReviewError(f"{source} is neither a folder of images nor a COCO json")
    if not paths:
        raise ReviewError(f"no images in {source}")
    names = [input_stem(p) for p in paths]  # a.ome.zarr is a
    if len(set(names)) != len(names):
        raise ReviewError("two images share a file name stem; review them in separate folders")
    return [check_entry(ReviewEntry(name=name, image=str(p)), str(source)) for name, p in zip(names, paths)]


def new_index(source: str | os.PathLike) -> ReviewIndex:
    """A fresh index over a folder of images, or over the images a COCO json names.

    Raises
    ------
    ReviewError
        No images found.
    """
    entries = source_entries(source)
    return ReviewIndex.create(review_folder_for(source), entries, source=str(source))


def migrate_legacy(folder: Path) -> ReviewIndex:
    """An index database from an earlier version's ``dataset.json`` (kept as ``dataset.json.v1``)."""
    path = folder / LEGACY_INDEX
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        entries = [ReviewEntry(**item) for item in payload["images"]]
        categories = {int(k): str(v) for k, v in payload.get("categories", {"0": "cell"}).items()}
        source = str(payload.get("source", ""))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        return rebuild(folder, reason=f"{LEGACY_INDEX} is not a readable review index ({error})")
    if not entries:
        return rebuild(folder, reason=f"{LEGACY_INDEX} lists no images")
    for entry in entries:
        check_entry(entry, str(path))
    index = ReviewIndex.create(folder, entries, source, categories)
    os.replace(path, folder / f"{LEGACY_INDEX}.v1")
    index.reconcile()
    return index


def rebuild(folder: Path, reason: str) -> ReviewIndex:
    """A new index from the images beside the dataset and the cells files' own records.

    The damaged index is kept beside it (``review.db.damaged``); states and
    cells come back from the cells files, so no image a person worked on is
    marked unsegmented again.
    """
    from napari_livecell.core.images import ImageReadError

    for suffix in ("", "-wal", "-shm"):
        damaged = Path(f"{folder / DB_NAME}{suffix}")
        if damaged.exists():
            os.replace(damaged, Path(f"{folder / DB_NAME}.damaged{suffix}"))
    entries: dict[str, ReviewEntry] = {}
    base = folder.parent
    for candidate in (base, base / "images"):
        if candidate.is_dir():
            with contextlib.suppress(ReviewError, ImageReadError):
                for entry in source_entries(candidate):
                    entries.setdefault(entry.name, entry)
    for path in sorted((folder / CELLS_FOLDER).glob("*.json")):
        name = path.stem
        coco = _read_cells(path)
        record = _record(coco) if coco else {}
        image = record.get("image") if isinstance(record.get("image"), str) else ""
        if not image and coco:
            files = [i.get("file_name") for i in coco.get("images") or [] if isinstance(i, dict)]
            image = str(base / Path(str(files[0])).name) if files and files[0] else ""
        if name not in entries:
            with contextlib.suppress(ReviewError):
                entries[name] = check_entry(ReviewEntry(name=name, image=image or str(path)), str(path))
    if not entries:
        raise ReviewError(f"{folder}: {reason}, and no image or cells file to rebuild it from")
    index = ReviewIndex.create(folder, list(entries.values()), source=str(base))
    index.reconcile()  # every cells file's own record, into the fresh rows
    index.rebuilt_because = reason
    return index


def open_index(source: str | os.PathLike) -> ReviewIndex:
    """The review of ``source``: resumed from its index when there is one."""
    source = Path(source)
    if source.is_dir() and is_review_folder(source):
        return ReviewIndex.load(source)
    folder = review_folder_for(source)
    if is_review_folder(folder):
        return ReviewIndex.load(folder)
    return new_index(source)


def combined_coco(index: ReviewIndex) -> dict:
    """One COCO dict of every image with cells (for training): ids renumbered, files kept."""
    from napari_livecell.core.formats.coco import load_coco

    combined: dict = {"info": {"description": "napari-livecell review"}, "images": [], "annotations": []}
    combined["categories"] = [{"id": k + 1, "name": v} for k, v in sorted(index.categories.items())]
    for entry in index.entries:
        path = index.cells_path(entry.name)
        if not path.is_file():
            continue
        coco = load_coco(path)
        for image in coco["images"]:
            new_id = len(combined["images"]) + 1
            ids = {image["id"]: new_id}
            combined["images"].append({**image, "id": new_id, "file_name": Path(entry.image).name})
            for annotation in coco["annotations"]:
                if annotation["image_id"] in ids:
                    combined["annotations"].append(
                        {
                            **annotation,
                            "id": len(combined["annotations"]) + 1,
                            "image_id": ids[annotation["image_id"]],
                        }
                    )
    return combined
