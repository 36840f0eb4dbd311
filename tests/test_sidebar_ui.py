"""The Models sidebar's front-end tests, run from pytest so that `pytest` runs everything:
the TypeScript unit tests and the Galata tests in headless Chromium (labextension/run-ui-tests.sh
installs the node packages from the committed lock files, and Debian's chromium when missing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "labextension" / "run-ui-tests.sh"


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed; the sidebar's tests need Node.js and npm")


@pytest.mark.slow
def test_sidebar_typescript_units_and_galata_in_chromium():
    _need("node")
    _need("npm")
    if not Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")).exists() and os.geteuid() != 0:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium, as root)")
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, (done.stdout[-6000:] + "\n" + done.stderr[-6000:])
