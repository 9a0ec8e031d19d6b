"""Kraken and Coinbase behind the ccxt venue, without a server: the per-exchange profiles agree with the
installed ccxt, Kraken's client id mapping reads back, and the exceptions ccxt's own error handlers
raise for the venues' answers are translated into the action they need.

The answers are Kraken's error codes as ccxt 4.5.90's exception table lists them, in the shape its
comments record, and the Coinbase bodies ccxt documents (``tests/fixtures/ccxt-static/``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import ccxt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import Bot4Error, HaltAndAlert
from execution.ccxt_errors import OrderNotAtVenue, OrderRejected, RetryVenueCall, translate_ccxt_error
from execution.ccxt_venue import EXCHANGE_PROFILES, client_id_from_kraken, kraken_cl_ord_id

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ccxt-static"
LONG_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.mark.parametrize("exchange", sorted(EXCHANGE_PROFILES))
def test_profile_declares_a_sandbox_exactly_where_the_installed_ccxt_has_one(exchange: str):
    client = getattr(ccxt, exchange)()
    assert EXCHANGE_PROFILES[exchange].sandbox is bool(client.urls.get("test"))


def test_only_binance_may_resend_an_order_after_a_rate_limit_answer():
    assert {name for name, p in EXCHANGE_PROFILES.items() if p.resend_after_rate_limit} == {"binance"}


@given(st.text(alphabet="0123456789abcdef", min_size=24, max_size=24))
def test_our_client_id_becomes_a_kraken_long_uuid_that_reads_back(digest: str):
    cid = f"b4-{digest}"
    venue_cid = kraken_cl_ord_id(cid)
    assert venue_cid is not None and LONG_UUID.fullmatch(venue_cid)
    assert client_id_from_kraken(venue_cid) == cid
    assert EXCHANGE_PROFILES["kraken"].our_client_id(venue_cid) == cid


def test_kraken_takes_free_text_up_to_18_characters_and_nothing_longer_that_is_not_ours():
    assert kraken_cl_ord_id("a" * 18) == "a" * 18
    assert kraken_cl_ord_id("a" * 19) is None
    assert client_id_from_kraken("d15708c1-dbb6-465d-b77d-47258319cc90") == "d15708c1-dbb6-465d-b77d-47258319cc90"


# ----------------------------------------------------------------------------------------------
# the exception ccxt's own handler raises for an answer, then our translation of it


def raised_by_ccxt(exchange: str, status: int, body: str) -> Exception:
    """Run the installed ccxt's error handling for an answer (as its fetch does); return what it raises."""
    client = getattr(ccxt, exchange)()
    url = "https://venue.invalid/x"
    try:
        client.handle_errors(status, "", url, "POST", {}, body, json.loads(body), {}, "")
        client.handle_http_status_code(status, "", url, "POST", body)
    except ccxt.BaseError as exc:
        return exc
    raise AssertionError(f"ccxt raised nothing for {exchange} {status} {body}")


def kraken(code: str) -> str:
    return json.dumps({"error": [code]})


COINBASE = json.loads((FIXTURES / "coinbase.json").read_text())["responses"]
REFUSED = json.dumps(COINBASE["createOrder.failed"])
NO_FUNDS = json.dumps(
    {
        **COINBASE["createOrder.failed"],
        "error_response": {"error": "INSUFFICIENT_FUND", "message": "Insufficient balance"},
    }
)
NOT_FOUND = json.dumps(
    {
        "error": "unknown",
        "error_details": "order with this orderID was not found",
        "message": "order with this orderID was not found",
    }
)
KRAKEN_FUNDS = json.dumps(json.loads((FIXTURES / "kraken.json").read_text())["responses"]["error.insufficient_funds"])


@pytest.mark.parametrize(
    ("exchange", "status", "body", "operation", "expected", "reason"),
    [
        ("kraken", 200, KRAKEN_FUNDS, "create_order", OrderRejected, "insufficient_balance"),
        ("kraken", 200, kraken("EOrder:Order minimum not met"), "create_order", OrderRejected, "below_min_amount"),
        ("kraken", 200, kraken("EGeneral:Invalid arguments"), "create_order", OrderRejected, "invalid_order"),
        ("kraken", 200, kraken("EOrder:Unknown order"), "cancel_order", OrderNotAtVenue, ""),
        ("kraken", 200, kraken("EAPI:Rate limit exceeded"), "create_order", RetryVenueCall, "rate_limited"),
        ("kraken", 200, kraken("EOrder:Rate limit exceeded"), "create_order", RetryVenueCall, "rate_limited"),
        ("kraken", 200, kraken("EService:Unavailable"), "fetch_open_orders", RetryVenueCall, "unavailable"),
        ("kraken", 200, kraken("EAPI:Invalid nonce"), "fetch_open_orders", RetryVenueCall, "clock_skew"),
        ("kraken", 200, kraken("EAPI:Invalid key"), "create_order", HaltAndAlert, ""),
        ("coinbase", 200, REFUSED, "create_order", OrderRejected, "invalid_order"),
        ("coinbase", 200, NO_FUNDS, "create_order", OrderRejected, "insufficient_balance"),
        ("coinbase", 404, NOT_FOUND, "fetch_order", OrderNotAtVenue, ""),
    ],
)
def test_exception_ccxt_raises_for_the_venue_answer_is_translated_into_the_action_it_needs(
    exchange: str, status: int, body: str, operation: str, expected: type[Bot4Error], reason: str
):
    exc = raised_by_ccxt(exchange, status, body)
    err = translate_ccxt_error(exc, exchange=exchange, operation=operation, http_status=status, body=body)
    assert type(err) is expected
    assert getattr(err, "reason", "") == reason


def test_coinbase_refused_create_is_a_plain_exchange_error_in_ccxt_and_keeps_the_venue_words_here():
    exc: Any = raised_by_ccxt("coinbase", 200, REFUSED)
    assert type(exc) is ccxt.ExchangeError  # ccxt's generic handler raises before its own table
    err = translate_ccxt_error(exc, exchange="coinbase", operation="create_order", http_status=200, body=REFUSED)
    assert isinstance(err, OrderRejected)
    assert err.report_reason == "invalid_order: UNSUPPORTED_ORDER_CONFIGURATION source is not enabled for trading"
