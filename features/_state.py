"""Snapshot envelope shared by every stateful feature class.

A snapshot is plain data (dict, list, tuple, str, int, float, bool, None): it pickles, it survives
a library upgrade that renames private attributes, and it can be read by a person. Each snapshot
carries the class name, a state version and the constructor parameters, so restoring into an
instance built with other parameters (a config change between a crash and a restart) fails loudly
instead of silently mixing two configurations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STATE_VERSION = 1

State = dict[str, Any]


def state_header(kind: str, params: Mapping[str, Any]) -> State:
    """The common part of a snapshot: class name, state version and constructor parameters.

    >>> state_header("SMA", {"period": 20})
    {'kind': 'SMA', 'state_version': 1, 'params': {'period': 20}}
    """
    return {"kind": kind, "state_version": STATE_VERSION, "params": dict(params)}


def check_state(state: Mapping[str, Any], kind: str, params: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` unless ``state`` is a snapshot of ``kind`` taken with ``params``.

    >>> check_state(state_header("SMA", {"period": 20}), "SMA", {"period": 21})
    Traceback (most recent call last):
    ...
    ValueError: SMA snapshot was taken with params {'period': 20}, this instance has {'period': 21}
    """
    got_kind = state.get("kind")
    if got_kind != kind:
        raise ValueError(f"snapshot is of {got_kind!r}, expected {kind!r}")
    got_version = state.get("state_version")
    if got_version != STATE_VERSION:
        raise ValueError(f"{kind} snapshot has state_version {got_version!r}, expected {STATE_VERSION}")
    got_params = state.get("params")
    if got_params != dict(params):
        raise ValueError(f"{kind} snapshot was taken with params {got_params!r}, this instance has {dict(params)!r}")
