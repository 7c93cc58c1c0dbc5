"""`graft serve` must set PROMETHEUS_MULTIPROC_DIR before prometheus_client is imported (its
value class is chosen at import): importing the CLI must not import it."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_cli_leaves_prometheus_client_unimported() -> None:
    code = "import sys, graft.cli; print('prometheus_client' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False", "a command module imports graft.metrics at import time"
