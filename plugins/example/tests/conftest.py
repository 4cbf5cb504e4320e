"""The example distribution's tests import it from its source folder: it is not installed in the
development venv (``test_example_distribution.py`` installs it into a temporary directory).
Spawned processes (``check_algorithm``'s pickling check) inherit this ``sys.path``."""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLE_DIR = Path(__file__).resolve().parents[1]
TESTS_DIR = Path(__file__).resolve().parent
for _path in (str(EXAMPLE_DIR), str(TESTS_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)
