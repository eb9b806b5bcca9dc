"""The public API: its names, its doctests, and that importing the package stays light."""

import doctest
import subprocess
import sys

import napari_livecell
from napari_livecell import api


def test_every_public_name_is_documented_and_exists():
    for name in api.__all__:
        obj = getattr(api, name)
        assert obj.__doc__, name


def test_the_package_offers_the_api_lazily():
    code = (
        "import sys, napari_livecell; "
        "heavy = ('torch', 'numba', 'napari', 'ultralytics', 'cv2', 'napari_livecell.api'); "
        "before = sorted(m for m in heavy if m in sys.modules); "
        "api = napari_livecell.api; "
        "print(before, api.__name__, 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # the API module itself loads no torch either: a model is loaded when asked for
    assert result.stdout.strip() == "[] napari_livecell.api False"
    assert napari_livecell.api is api


def test_api_examples_run():
    failures, tried = doctest.testmod(api, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert tried >= 20
    assert failures == 0
