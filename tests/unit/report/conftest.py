"""Session fixtures of the report tests: the real freqtrade 1h run as report input (see peer_run)."""

from __future__ import annotations

import pytest

from flows.report import ReportPaths, RunResults, build_report
from tests.unit.report.peer_run import PeerTrade, freqtrade_results, load_peer_trades


@pytest.fixture(scope="session")
def peer_trades() -> list[PeerTrade]:
    return load_peer_trades()


@pytest.fixture(scope="session")
def ft_results() -> RunResults:
    return freqtrade_results()


@pytest.fixture(scope="session")
def ft_report(ft_results: RunResults, tmp_path_factory: pytest.TempPathFactory) -> ReportPaths:
    """The report of the whole real run, built once."""
    return build_report(ft_results, tmp_path_factory.mktemp("ft-report"))
