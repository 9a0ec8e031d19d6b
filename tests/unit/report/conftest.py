"""Session fixtures of the report tests: the real freqtrade 1h run as report input (see peer_run)."""

from __future__ import annotations

import pytest

from flows.report import RunResults
from tests.unit.report.peer_run import PeerTrade, freqtrade_results, load_peer_trades


@pytest.fixture(scope="session")
def peer_trades() -> list[PeerTrade]:
    return load_peer_trades()


@pytest.fixture(scope="session")
def ft_results() -> RunResults:
    return freqtrade_results()
