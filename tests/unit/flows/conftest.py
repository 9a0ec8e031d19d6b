"""Fixtures for the flows tests: where the real market data lives.

``shared_data`` is the folder of real recorded files (``$BOT4_SHARED_DATA``, by default
``<repo>/../shared/data``). It mirrors the root conftest's fixture of the same name, so these
tests read the same folder whether they run alone or with the whole suite.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def shared_data_path() -> Path:
    """The real-data folder, from ``BOT4_SHARED_DATA`` or next to the repository."""
    return Path(os.environ.get("BOT4_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_path()
    if not path.is_dir():
        pytest.fail(f"real market data not found at {path}; set BOT4_SHARED_DATA")
    return path
