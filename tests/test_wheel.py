"""The wheel that ``python -m build`` makes installs into a fresh venv, validates in npe2 and segments.

The venv sees the test environment's packages (a ``.pth`` file naming its
site-packages, after the venv's own) and gets the wheel alone (``pip
install --no-deps``): what is checked is the
wheel's own content (the package, ``napari.yaml``, the shipped models,
``py.typed``, the console script and napari's entry point), in about a
minute. Installing the base dependencies from the registry into an empty
venv takes minutes (``tox -e base`` and benchmarks/README.md do that); the
wheel's dependency list is compared with pyproject.toml instead. The venv's
own site-packages come before the test environment's, so the package that
runs is the wheel's, not the source tree (checked).
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: build's own TOML reader
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_FILES = (
    "napari_livecell/napari.yaml",
    "napari_livecell/py.typed",
    "napari_livecell/models/livecell-synth-yolov8n-seg.onnx",
    "napari_livecell/models/livecell-synth-yolov8n-seg.pt",
)

pytestmark = pytest.mark.slow


def build_wheel(source: Path, out: Path) -> Path:
    """``python -m build --wheel`` of ``source``; isolated unless this environment can build it."""
    isolation = [] if Version(version("setuptools")) < Version("77") else ["--no-isolation"]
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", *isolation, "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (wheel,) = out.glob("napari_livecell-*.whl")
    return wheel


def check_wheel(source: Path, tmp: Path) -> None:
    """Build ``source``'s wheel, install it into a fresh venv and use it there; assert on the way."""
    wheel = build_wheel(source, tmp / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in PACKAGE_FILES if name not in names]
    assert not missing, f"not in the wheel: {missing}"

    # no PYTHONPATH: a source tree on it (with the egg-info a build leaves there) would be taken for
    # the installed package
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
        env=env,
    )
    # then this environment's packages after the venv's own (after: pip would take the test
    # environment's napari-livecell for this one; plain paths: its .pth files, an editable install
    # of the source tree among them, are not read)
    (own,) = (venv / "lib").glob("python*/site-packages")
    (own / "test-environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"

    def run(*command: str | Path) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(part) for part in command], capture_output=True, text=True, env=env, cwd=tmp, timeout=600
        )
        assert result.returncode == 0, f"{command}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
        return result

    probe = run(
        python,
        "-c",
        "import json, napari_livecell; from importlib.metadata import distribution as d; "
        "m = d('napari-livecell'); print(json.dumps({'file': napari_livecell.__file__, "
        "'entry_points': sorted(f'{e.group}:{e.name}' for e in m.entry_points), "
        "'requires': m.requires or []}))",
    )
    report = json.loads(probe.stdout)
    assert Path(report["file"]).is_relative_to(venv), f"the source tree ran, not the wheel: {report['file']}"
    assert report["entry_points"] == ["console_scripts:napari-livecell", "napari.manifest:napari-livecell"]
    base = [r for r in report["requires"] if "extra ==" not in r]
    declared = tomllib.loads((source / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(base) == sorted(declared)

    run(python, "-m", "npe2", "validate", "napari-livecell")
    run(venv / "bin" / "napari-livecell", "synth", "--out", tmp / "sample", "--n", "1", "--seed", "0")
    cli = venv / "bin" / "napari-livecell"
    segment = run(cli, "segment", tmp / "sample" / "images", "--out", tmp / "out")
    coco = json.loads((tmp / "out" / "predictions.json").read_text())
    assert len(coco["annotations"]) > 20, segment.stderr


def test_the_built_wheel_installs_validates_and_segments_the_sample(tmp_path):
    pytest.importorskip("build")
    pytest.importorskip("onnxruntime")
    check_wheel(ROOT, tmp_path)


def test_the_wheel_check_fails_without_the_shipped_model(tmp_path):
    # the same check on a copy of the tree whose ONNX model is missing must fail
    pytest.importorskip("build")
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__"),
    )
    (source / "src/napari_livecell/models/livecell-synth-yolov8n-seg.onnx").unlink()
    with pytest.raises(AssertionError, match="not in the wheel"):
        check_wheel(source, tmp_path / "check")
