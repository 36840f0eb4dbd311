"""The Models sidebar's front-end tests, run from pytest so that `pytest` runs everything:
the TypeScript unit tests and the Galata tests in headless Chromium (labextension/run-ui-tests.sh
installs the node packages from the committed lock files, and Debian's chromium when missing)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import wait_for

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
    # As in a user's lab: deploys fork from the warm helper (pytest's own default is off).
    from nbmodel.serving._process import free_port

    port = free_port()
    env = dict(os.environ, PYTHON=sys.executable, NBMODEL_WARM_SERVER="1", NBMODEL_UI_PORT=str(port))
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, (done.stdout[-6000:] + "\n" + done.stderr[-6000:])
    # Nothing the run started outlives it: not the lab, its kernels and servers, nor the warm
    # helper its deploys started (which would live on in the user's runtime folder).
    mark = f"NBMODEL_UI_PORT={port}".encode()
    wait_for(lambda: not _carrying(mark), 30)  # servers see their kernel gone within a second
    left = _carrying(mark)
    for line in left:  # this test stops what it started, even when the run did not
        with contextlib.suppress(OSError):
            os.kill(int(line.split()[0]), signal.SIGKILL)
    assert left == [], "left running after the run"


def _carrying(mark: bytes) -> list[str]:
    """Live processes (not this one) whose environment holds ``mark``: pid and command."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if mark not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state != "Z":
            found.append(f"{entry.name} {command[:120]}")
    return found
