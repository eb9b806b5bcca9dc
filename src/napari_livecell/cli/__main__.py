"""``python -m napari_livecell.cli``: the same as the ``napari-livecell`` command."""

import sys

from napari_livecell.cli import main

sys.exit(main())
