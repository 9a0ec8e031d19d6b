"""The private test broker's cluster id (tests/support/private_kafka.py)."""

from __future__ import annotations

import uuid

from tests.support.private_kafka import cluster_id


def test_a_cluster_id_that_would_read_as_an_option_is_drawn_again():
    # 0xF8 as the first byte encodes to '-' first: the id that failed a make chaos run
    # ("-tNgK4tZSCSUF_c9mLod4Q": kafka-storage's parser took it for an option).
    dashed = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))
    plain = uuid.UUID(bytes=bytes(range(16)))
    draws = iter([dashed, plain])

    made = cluster_id(lambda: next(draws))

    assert made == "AAECAwQFBgcICQoLDA0ODw"
    assert not made.startswith("-")


def test_a_cluster_id_is_kafkas_22_character_url_safe_form():
    made = cluster_id()

    assert len(made) == 22
    assert set(made) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
