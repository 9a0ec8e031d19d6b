"""Bytewax's own metrics come out of the flow process's /metrics: a real dataflow run the way
``bot4 run`` runs one (tests/support/bytewax_probe.py, in a child process), read through our
endpoint while it runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from flows import metrics
from tests.support.bytewax_probe import BATCH, BATCHES
from tests.unit.flows.test_metrics_server import free_port

ROOT = Path(__file__).resolve().parents[3]


@contextmanager
def probe_process(port: int, name: str, folder: Path) -> Iterator[Callable[[], None]]:
    """The probe flow in a child process serving /metrics on ``port``; yields ``release``."""
    release = folder / "release"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYTEWAX_DATAFLOW_API")}
    env["TMPDIR"] = str(folder)  # where Bytewax's dataflow.json goes
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.bytewax_probe", str(port), str(release), name],
        cwd=folder,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield release.touch
        release.touch()
        assert child.wait(timeout=30) == 0, child.stderr.read() if child.stderr else ""
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def poll(read: Callable[[], str], done: Callable[[str], bool], timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        try:
            text = read()
            if done(text):
                return text
        except OSError:
            pass  # the child is still starting
        time.sleep(0.1)
    return text


def test_bytewax_step_counters_are_served_by_the_flow_metrics_endpoint_while_it_runs(tmp_path):
    port = free_port()
    with probe_process(port, "bxm", tmp_path):
        text = poll(lambda: scrape(port), lambda t: sample(t, "bytewax_item_out_count_total", step_id="bxm.inp") == 300)
        assert sample(text, "bytewax_item_out_count_total", step_id="bxm.inp") == BATCHES * BATCH, text[-2000:]
        # The filter's flat_map_batch took every item and passed the even half on.
        assert sample(text, "bytewax_item_inp_count_total", step_id="bxm.evens.flat_map.flat_map_batch") == 300
        assert sample(text, "bytewax_item_out_count_total", step_id="bxm.evens.flat_map.flat_map_batch") == 150
        assert sample(text, "bytewax_inp_part_next_batch_duration_seconds_count", step_id="bxm.inp") is not None
        assert sample(text, "bot4_bytewax_metrics_up") == 1.0
        assert "otel_scope_name" not in text and "target_info" not in text
        # Our own registry once, not a second copy through Bytewax's endpoint.
        assert len(re.findall(r"^# TYPE python_info ", text, flags=re.M)) == 1
        (graph,) = tmp_path.glob("bot4-bytewax-*/dataflow.json")
        assert '"flow_id": "bxm"' in graph.read_text()
    # Bytewax wrote its graph file (dataflow.json) under the temp folder, not the working
    # directory, and the process removed that folder when it exited.
    assert not (tmp_path / "dataflow.json").exists()
    assert list(tmp_path.glob("bot4-bytewax-*")) == []


def test_only_the_first_flow_of_a_process_gets_bytewax_metrics_and_an_operator_port_is_kept(monkeypatch):
    monkeypatch.setattr(metrics, "_bytewax_api_used", [])
    monkeypatch.setattr(metrics, "_servers", [])
    previous = metrics.BYTEWAX.port
    monkeypatch.setenv("BYTEWAX_DATAFLOW_API_ENABLED", "1")
    monkeypatch.delenv("BYTEWAX_DATAFLOW_API_PORT", raising=False)
    monkeypatch.setenv("BYTEWAX_DATAFLOW_API_CACHE_PATH", "/nonexistent-not-written")
    try:
        assert metrics.enable_bytewax_metrics() == 3030  # Bytewax's default port, as the operator left it
        monkeypatch.setenv("BYTEWAX_DATAFLOW_API_PORT", "31234")
        assert metrics.enable_bytewax_metrics() == 31234
        # A fresh process (no API asked for yet) whose operator pinned only the port.
        monkeypatch.setattr(metrics, "_bytewax_api_used", [])
        monkeypatch.delenv("BYTEWAX_DATAFLOW_API_ENABLED")
        monkeypatch.setenv("BYTEWAX_DATAFLOW_API_PORT", "31235")
        port = metrics.ensure_server(free_port())
        assert metrics.BYTEWAX.port == 31235 and os.environ["BYTEWAX_DATAFLOW_API_ENABLED"] == "true"
        # A second flow in the same process: Bytewax 0.21 would refuse a second API run.
        assert metrics.ensure_server(free_port()) == port
        assert metrics.BYTEWAX.port is None and "BYTEWAX_DATAFLOW_API_ENABLED" not in os.environ
        with metrics.BYTEWAX.serving():
            assert list(metrics.BYTEWAX.collect()) == []
    finally:
        for server in metrics._servers:
            server.shutdown()
            server.server_close()
        metrics.BYTEWAX.watch(previous)


@pytest.mark.parametrize("served", [False, True])
def test_bytewax_is_read_only_while_our_endpoint_answers_a_scrape(served, monkeypatch):
    # Bytewax's server asks this process's registry for its own answer: reading Bytewax from
    # there would recurse. An unbound port stands in for it.
    monkeypatch.setattr(metrics.BYTEWAX, "_port", free_port())
    if served:
        with metrics.BYTEWAX.serving():
            families = list(metrics.BYTEWAX.collect())
        assert [(f.name, f.samples[0].value) for f in families] == [("bot4_bytewax_metrics_up", 0.0)]
    else:
        assert list(metrics.BYTEWAX.collect()) == []
