"""The suite keeps to its own settings folder: a user's model picker never lists a test's weights.

tests/conftest.py points ``NAPARI_LIVECELL_HOME`` at a temporary folder when
it is imported, before any test runs; these tests prove that everything that
writes settings (the recent-models list the Segment cells and Train on
corrections widgets share, Ultralytics' config) lands there and leaves the
real ``~/.cache/napari-livecell`` as it was.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from napari_livecell._qt.model_picker import load_recent_models, offer_model, remember_model
from napari_livecell.core.models.offline import config_dir

REAL_HOME = Path.home() / ".cache" / "napari-livecell"


def snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``folder``: size, modification time and (small files) content."""
    if not folder.is_dir():
        return {}
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            stat = path.stat()
            content = path.read_bytes() if stat.st_size < 1_000_000 else b""
            files[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns, content)
    return files


@pytest.fixture
def suite_home() -> Path:
    home = os.environ.get("NAPARI_LIVECELL_HOME")
    assert home, "tests/conftest.py must set NAPARI_LIVECELL_HOME"
    return Path(home).resolve()


def test_the_suite_has_its_own_settings_folder(suite_home):
    assert suite_home.is_relative_to(Path(tempfile.gettempdir()).resolve())
    assert suite_home.name.startswith("napari-livecell-tests-")
    assert not suite_home.is_relative_to(REAL_HOME.resolve())
    assert config_dir().resolve().is_relative_to(suite_home)


def test_remembering_a_model_writes_only_to_the_suite_folder(suite_home, tmp_path):
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"not a real model; only its path is remembered")
    before = snapshot(REAL_HOME)

    remember_model(str(weights))  # what Segment cells does after a run with a model file
    offer_model(str(weights))  # what Train on corrections does with a finished best.pt

    recent = suite_home / "recent_models.txt"
    assert recent.read_text().splitlines()[0] == str(weights)
    assert load_recent_models()[0] == str(weights)
    assert snapshot(REAL_HOME) == before
    real_list = REAL_HOME / "recent_models.txt"
    assert not real_list.exists() or str(tmp_path) not in real_list.read_text()
