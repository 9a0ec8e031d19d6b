"""The console UI's own tests (Vitest: decimal strings, UTC times, PnL signs) run under pytest, so
`make test` covers them; `make console` installs the node modules they need."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CONSOLE = Path(__file__).resolve().parents[3] / "console"


def test_the_ui_formatting_tests_pass():
    npm = shutil.which("npm")
    assert npm, "npm not found: the console UI needs Node 20 and npm (see docs/console.md)"
    assert (CONSOLE / "node_modules" / "vitest").is_dir(), f"{CONSOLE}/node_modules is missing: run `make console`"
    done = subprocess.run(
        [npm, "test", "--silent"], check=False, cwd=CONSOLE, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed" in done.stdout
