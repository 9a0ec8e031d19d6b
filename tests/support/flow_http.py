"""A flow process's HTTP side as the tests see it: free loopback ports to serve on, and its
``/metrics`` and ``/readyz`` answers (none while it does not answer)."""

from __future__ import annotations

import http.client
import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (all bound at once, then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _get(port: int, path: str) -> tuple[int, str] | None:
    """Status and body of ``GET http://127.0.0.1:PORT/PATH`` (2 s), or None if there was no 2xx answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return int(answer.status), answer.read().decode()
    except (OSError, http.client.HTTPException):
        return None


def scrape(port: int, path: str = "/metrics") -> str | None:
    """The body at ``path``, or None while the process does not answer."""
    got = _get(port, path)
    return None if got is None else got[1]


def ready(port: int) -> bool:
    """``/readyz`` answers 200."""
    got = _get(port, "/readyz")
    return got is not None and got[0] == 200


def metric(port: int, name: str, **labels: str) -> float | None:
    """The value of one series on a flow's ``/metrics`` (None while it does not answer or has no such
    series yet)."""
    text = scrape(port)
    if text is None:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None
