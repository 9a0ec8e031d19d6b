"""Parsers of every recorded format in the shared data folder, checked against the raw files.

Counts are exact (the data README's), first/last records are compared with the literal text of
the file, and refusals are provoked with real lines cut short or corrupted in a temporary copy.
"""

from __future__ import annotations

import gzip
import itertools
import json
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from core.clock import from_epoch_ms, from_epoch_ns, from_epoch_us
from core.errors import QuarantineRecord
from core.events import BookDelta, BookSnapshot, Candle, MarketEvent, Quote, Side, Trade
from flows.replay import FORMATS, ReplayStats, detect_format, read_events

SPOT = "ticks/binance-spot-ws"
USDM = "ticks/binance-usdm-ws"
NAUTILUS = "ticks/binance-spot-2021"
FREQTRADE = "ticks/freqtrade-xrp-eth"
TARDIS = "ticks/tardis-binance-futures"


def _by_type(events: Iterable[MarketEvent]) -> dict[type, list[MarketEvent]]:
    out: dict[type, list[MarketEvent]] = {}
    for e in events:
        out.setdefault(type(e), []).append(e)
    return out


def _assert_aware_utc(events: Iterable[MarketEvent]) -> None:
    for e in events:
        assert e.ts_event.tzinfo is UTC and e.ts_recv.tzinfo is UTC, e


@pytest.fixture(scope="module")
def btc_0808(shared_data: Path) -> dict[type, list[MarketEvent]]:
    return _by_type(read_events(shared_data / SPOT / "btcusdt_20240808.gz"))


@pytest.fixture(scope="module")
def btc_0809(shared_data: Path) -> dict[type, list[MarketEvent]]:
    return _by_type(read_events(shared_data / SPOT / "btcusdt_20240809.gz"))


# ---- detection -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relpath", "expected"),
    [
        (f"{SPOT}/btcusdt_20240808.gz", "binance-ws-spot"),
        (f"{SPOT}/ethusdt_20240809.gz", "binance-ws-spot"),
        (f"{USDM}/btcusdt_20240808.gz", "binance-ws-usdm"),
        (f"{TARDIS}/trades.csv", "tardis-trades-csv"),
        (f"{TARDIS}/quotes.csv", "tardis-quotes-csv"),
        (f"{NAUTILUS}/btcusdt-trades.parquet", "nautilus-trades-parquet"),
        (f"{NAUTILUS}/btcusdt-quotes.parquet", "nautilus-quotes-parquet"),
        (f"{NAUTILUS}/btcusdt-depth-snap.csv", "binance-depth-csv"),
        (f"{NAUTILUS}/btcusdt-depth-update.csv", "binance-depth-csv"),
        (f"{FREQTRADE}/XRP_ETH-trades.json.gz", "ccxt-trades-json"),
        (f"{FREQTRADE}/XRP_ETH-trades.feather", "ccxt-trades-feather"),
        (f"{FREQTRADE}/XRP_ETH-1m.feather", "ohlcv-feather"),
        ("candles/binance-1h/BTC_USDT-1h.feather", "ohlcv-feather"),
        ("candles/binance-1m-2021/ETH_USDT-5m.json", "ohlcv-json"),
        ("candles/ftx-1m/btc-perp-20211231-20220201_1m.csv", "ohlcv-csv"),
        ("exchange-fixtures/cryptofeed/BINANCE.ws.1.0", "cryptofeed-binance-ws-spot"),
    ],
)
def test_detect_format_names_every_shared_file(shared_data: Path, relpath: str, expected: str) -> None:
    assert detect_format(shared_data / relpath) == expected
    assert expected in FORMATS


def test_detect_format_when_content_is_unknown_then_names_the_file_and_known_formats(shared_data: Path) -> None:
    with pytest.raises(ValueError, match=r"btcusdt-instrument\.txt.*known formats"):
        detect_format(shared_data / NAUTILUS / "btcusdt-instrument.txt")
    with pytest.raises(FileNotFoundError):
        detect_format(shared_data / "no-such-file.gz")
    # Coinbase and Kraken recordings are fixtures for the local exchange server, not replay inputs
    with pytest.raises(ValueError, match="known formats"):
        detect_format(shared_data / "exchange-fixtures/cryptofeed/COINBASE.ws.28.0")


# ---- Binance spot websocket capture ----------------------------------------------------------


def test_spot_capture_counts_match_the_data_readme(btc_0808, btc_0809, shared_data: Path) -> None:
    assert len(btc_0808[Trade]) == 9_757
    assert len(btc_0809[Trade]) == 10_147
    assert len(btc_0808[BookSnapshot]) == 1 and BookSnapshot not in btc_0809
    assert (len(btc_0808[BookDelta]), len(btc_0808[Quote])) == (3_451, 28_040)
    assert (len(btc_0809[BookDelta]), len(btc_0809[Quote])) == (3_044, 45_134)
    for name, trades in (("ethusdt_20240808.gz", 6_106), ("ethusdt_20240809.gz", 8_409)):
        stats = ReplayStats()
        eth = Counter(type(e) for e in read_events(shared_data / SPOT / name, stats=stats))
        assert eth[Trade] == trades
        assert stats.events == sum(eth.values()) and not stats.quarantined and not stats.skipped


def test_spot_trade_first_and_last_match_the_raw_lines(btc_0808, btc_0809) -> None:
    # 1723161254087896568 {"stream":"btcusdt@trade","data":{...,"t":3735683259,"p":"61837.63000000",
    #   "q":"0.02000000","T":1723161255342,"m":true,"M":true}}
    first = btc_0808[Trade][0]
    assert first == Trade(
        "binance",
        "BTC/USDT",
        "3735683259",
        Decimal("61837.63000000"),
        Decimal("0.02000000"),
        Side.SELL,
        from_epoch_ms(1723161255342),
        from_epoch_ns(1723161254087896568),
    )
    assert str(first.price) == "61837.63000000" and str(first.amount) == "0.02000000"
    assert first.ts_event == datetime(2024, 8, 8, 23, 54, 15, 342000, tzinfo=UTC)
    assert first.ts_recv == datetime(2024, 8, 8, 23, 54, 14, 87896, tzinfo=UTC)
    assert first.key == "binance:BTC/USDT"
    # ..."t":3735693015,"p":"61685.99000000","q":"0.00140000","T":1723161601271,"m":true
    last = btc_0808[Trade][-1]
    assert (last.trade_id, str(last.price), str(last.amount), last.side) == (
        "3735693015",
        "61685.99000000",
        "0.00140000",
        Side.SELL,
    )
    # the next file continues the tape: ..."t":3735703162,"p":"61602.02000000","m":false
    assert btc_0809[Trade][0].trade_id == "3735693016"
    end = btc_0809[Trade][-1]
    assert (end.trade_id, str(end.price), str(end.amount), end.side) == (
        "3735703162",
        "61602.02000000",
        "0.00536000",
        Side.BUY,
    )
    assert end.ts_event == from_epoch_ms(1723161905800)


def test_spot_trade_ids_are_gapless_within_and_across_files(btc_0808, btc_0809) -> None:
    ids = [int(t.trade_id) for t in btc_0808[Trade] + btc_0809[Trade]]
    assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_spot_depth_deltas_chain_on_update_ids_across_the_midnight_split(btc_0808, btc_0809) -> None:
    deltas = btc_0808[BookDelta] + btc_0809[BookDelta]
    first = deltas[0]
    # {"stream":"btcusdt@depth@100ms","data":{"E":1723161255208,"U":50093239189,"u":50093239202,...
    assert (first.first_sequence, first.sequence, first.ts_event) == (
        50093239189,
        50093239202,
        from_epoch_ms(1723161255208),
    )
    assert first.bids[0] == (Decimal("61737.63000000"), Decimal("0.00000000"))
    assert first.asks[0] == (Decimal("61837.64000000"), Decimal("1.54698000"))
    for prev, cur in itertools.pairwise(deltas):
        assert cur.first_sequence == prev.sequence + 1, (prev, cur)
    # the 08-08 file ends at u=50093421584 and the 08-09 file starts at U=50093421585
    assert btc_0809[BookDelta][0].first_sequence == btc_0808[BookDelta][-1].sequence + 1 == 50093421585


def test_spot_snapshot_carries_last_update_id_and_sorted_levels(btc_0808) -> None:
    (snap,) = btc_0808[BookSnapshot]
    assert snap.sequence == 50093239218
    assert snap.key == "binance:BTC/USDT"
    assert len(snap.bids) == len(snap.asks) == 1000
    assert snap.bids[0] == (Decimal("61837.63000000"), Decimal("3.78826000"))
    assert snap.bids[-1] == (Decimal("61631.55000000"), Decimal("0.00014000"))
    assert snap.asks[0] == (Decimal("61837.64000000"), Decimal("1.54698000"))
    assert snap.asks[-1] == (Decimal("62053.18000000"), Decimal("0.00010000"))
    assert [p for p, _ in snap.bids] == sorted((p for p, _ in snap.bids), reverse=True)
    assert [p for p, _ in snap.asks] == sorted(p for p, _ in snap.asks)
    # spot REST snapshots carry no exchange time: event time is the receive time
    assert snap.ts_event == snap.ts_recv == from_epoch_ns(1723161254206652067)


def test_spot_book_ticker_has_sequence_and_receive_time_as_event_time(btc_0808) -> None:
    # 1723161254087891268 {"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT",
    #   "b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}
    quote = btc_0808[Quote][0]
    assert quote == Quote(
        "binance",
        "BTC/USDT",
        Decimal("61837.63000000"),
        Decimal("3.78826000"),
        Decimal("61837.64000000"),
        Decimal("1.54698000"),
        from_epoch_ns(1723161254087891268),
        from_epoch_ns(1723161254087891268),
        50093239212,
    )
    _assert_aware_utc(btc_0808[Quote])
    _assert_aware_utc(btc_0808[BookDelta])
    _assert_aware_utc(btc_0808[Trade])


# ---- Binance USD-M futures capture -----------------------------------------------------------


def test_usdm_capture_maps_trades_deltas_on_pu_and_snapshot_with_exchange_time(shared_data: Path) -> None:
    path = shared_data / USDM / "btcusdt_20240808.gz"
    lines = 20_000  # a prefix keeps the test fast; every line of it is one event
    with gzip.open(path, "rt") as fh:
        raw_trades = sum('"stream":"btcusdt@trade"' in next(fh) for _ in range(lines))
    stats = ReplayStats()
    by = _by_type(itertools.islice(read_events(path, stats=stats), lines))
    assert len(by[Trade]) == raw_trades == 3_024
    first = by[Trade][0]
    # {"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5266583935,"p":"61800.30",
    #  "q":"0.006","X":"MARKET","m":false}
    assert (first.key, first.trade_id, str(first.price), str(first.amount), first.side) == (
        "binanceusdm:BTC/USDT:USDT",
        "5266583935",
        "61800.30",
        "0.006",
        Side.BUY,
    )
    deltas = by[BookDelta]
    # futures deltas chain on pu: first_sequence = pu + 1 makes "applies after first_sequence - 1" hold
    assert (deltas[0].first_sequence, deltas[0].sequence) == (5123107831937 + 1, 5123107837557)
    assert all(cur.first_sequence == prev.sequence + 1 for prev, cur in itertools.pairwise(deltas))
    (snap,) = by[BookSnapshot]
    assert (snap.sequence, snap.ts_event) == (5123107852948, from_epoch_ms(1723161256501))
    assert snap.ts_recv == from_epoch_ns(1723161255319702566)
    assert snap.bids[0] == (Decimal("61800.20"), Decimal("2.909"))
    quote = by[Quote][0]
    assert (quote.sequence, quote.ts_event) == (5123107839020, from_epoch_ms(1723161256313))
    assert not stats.quarantined


def test_usdm_trade_not_printed_by_the_market_is_skipped_and_counted(shared_data: Path, tmp_path: Path) -> None:
    lines = _real_lines(shared_data / USDM / "btcusdt_20240808.gz", 60)
    at = next(i for i, line in enumerate(lines) if b'"X":"MARKET"' in line)
    lines[at] = lines[at].replace(b'"X":"MARKET"', b'"X":"INSURANCE_FUND"')
    path = tmp_path / "btcusdt_20240808.gz"
    path.write_bytes(gzip.compress(b"".join(lines)))
    stats = ReplayStats()
    events = list(read_events(path, fmt="binance-ws-usdm", stats=stats))
    assert stats.skipped == Counter({"trade:INSURANCE_FUND": 1})
    assert len(events) == 59 and not stats.quarantined


def test_cryptofeed_binance_recording_maps_agg_trades_and_counts_klines_as_skipped(shared_data: Path) -> None:
    path = shared_data / "exchange-fixtures/cryptofeed/BINANCE.ws.1.0"
    stats = ReplayStats()
    by = _by_type(read_events(path, stats=stats))
    # 1633998523.957215: {"stream":"nknusdt@aggTrade","data":{"e":"aggTrade","E":1633998523963,
    #   "s":"NKNUSDT","a":15683430,"p":"0.35280000","q":"58.00000000",...,"T":1633998523963,"m":false}}
    first = by[Trade][0]
    assert first == Trade(
        "binance",
        "NKN/USDT",
        "15683430",
        Decimal("0.35280000"),
        Decimal("58.00000000"),
        Side.BUY,
        from_epoch_ms(1633998523963),
        from_epoch_us(1633998523957215),
    )
    assert len(by[Trade]) == 2 and by[Trade][1].key == "binance:LRC/BTC"
    assert {e.symbol for e in by[BookDelta]} == {"NKN/USDT", "BLZ/ETH", "LRC/BTC", "RUNE/EUR"}
    assert stats.skipped == Counter({"kline_1m": 2, "connection": 1, "blank_line": 1})
    assert stats.events == 263 and not stats.quarantined


# ---- refusals: real lines cut short or corrupted ---------------------------------------------


def _real_lines(path: Path, n: int) -> list[bytes]:
    with gzip.open(path, "rb") as fh:
        return [next(fh) for _ in range(n)]


def test_bad_capture_lines_go_to_on_error_with_a_reason_and_the_replay_goes_on(
    shared_data: Path, tmp_path: Path
) -> None:
    lines = _real_lines(shared_data / SPOT / "btcusdt_20240808.gz", 12)
    trade_at = next(i for i, line in enumerate(lines) if b"@trade" in line)
    truncated = lines[2][: len(lines[2]) // 2] + b"\n"
    bad_price = lines[trade_at].replace(b'"p":"61837.63000000"', b'"p":"61837.6x000000"')
    assert bad_price != lines[trade_at]
    corrupt = [*lines[:2], truncated, *lines[3:trade_at], bad_price, *lines[trade_at + 1 :]]
    path = tmp_path / "btcusdt_20240808.gz"
    path.write_bytes(gzip.compress(b"".join(corrupt)))

    refused: list[tuple[bytes, QuarantineRecord]] = []
    stats = ReplayStats()
    events = list(read_events(path, on_error=lambda raw, err: refused.append((raw, err)), stats=stats))

    assert [err.reason for _, err in refused] == ["malformed_json", "bad_number"]
    assert refused[0][0] == truncated.rstrip(b"\n")
    assert refused[1][0] == bad_price.rstrip(b"\n")
    assert "61837.6x000000" in refused[1][1].detail and "price" in refused[1][1].detail
    assert len(events) == len(lines) - 2 == stats.events
    assert stats.quarantined == Counter({"malformed_json": 1, "bad_number": 1})

    with pytest.raises(QuarantineRecord) as info:  # by default a bad line stops the replay, loudly
        list(read_events(path))
    assert info.value.reason == "malformed_json"
    assert any("record 3" in note for note in info.value.__notes__)


def test_truncated_gzip_reports_the_cut_after_the_good_lines(shared_data: Path, tmp_path: Path) -> None:
    whole = gzip.compress(b"".join(_real_lines(shared_data / SPOT / "ethusdt_20240808.gz", 400)))
    path = tmp_path / "ethusdt_20240808.gz"
    path.write_bytes(whole[: len(whole) * 3 // 4])
    refused: list[QuarantineRecord] = []
    events = list(read_events(path, on_error=lambda raw, err: refused.append(err)))
    assert 0 < len(events) < 400
    assert refused[-1].reason == "truncated_file"


def test_bad_csv_rows_are_refused_with_reasons(shared_data: Path, tmp_path: Path) -> None:
    src = (shared_data / TARDIS / "trades.csv").read_bytes().splitlines(keepends=True)[:6]
    src[2] = src[2].replace(b",9682,", b",96x2,")
    src[4] = b",".join(src[4].split(b",")[:5]) + b"\n"
    path = tmp_path / "trades.csv"
    path.write_bytes(b"".join(src))
    refused: list[str] = []
    events = list(read_events(path, on_error=lambda raw, err: refused.append(err.reason)))
    assert refused == ["bad_number", "wrong_column_count"]
    assert len(events) == 3


def test_json_array_cut_short_keeps_the_complete_records(shared_data: Path, tmp_path: Path) -> None:
    text = gzip.decompress((shared_data / FREQTRADE / "XRP_ETH-trades.json.gz").read_bytes())
    path = tmp_path / "XRP_ETH-trades.json"
    path.write_bytes(text[:5000])
    expected = len(json.loads(text[: text.rindex(b"],", 0, 5000) + 1] + b"]"))
    refused: list[QuarantineRecord] = []
    events = list(read_events(path, on_error=lambda raw, err: refused.append(err)))
    assert len(events) == expected
    assert [e.reason for e in refused] == ["truncated_file"]


# ---- Tardis ----------------------------------------------------------------------------------


def test_tardis_trades_are_gapless_with_microsecond_times(shared_data: Path) -> None:
    trades = list(read_events(shared_data / TARDIS / "trades.csv"))
    assert len(trades) == 9_999
    # binance-futures,BTCUSDT,1582329602111000,1582329602418379,42377944,buy,9682,0.132
    assert trades[0] == Trade(
        "binanceusdm",
        "BTC/USDT:USDT",
        "42377944",
        Decimal("9682"),
        Decimal("0.132"),
        Side.BUY,
        from_epoch_us(1582329602111000),
        from_epoch_us(1582329602418379),
    )
    assert trades[-1].side is Side.SELL and str(trades[-1].price) == "9666.84"
    ids = [int(t.trade_id) for t in trades]  # type: ignore[union-attr]
    assert ids == list(range(ids[0], ids[0] + 9_999))
    _assert_aware_utc(trades)


def test_tardis_quotes_read_their_own_column_order(shared_data: Path) -> None:
    quotes = list(read_events(shared_data / TARDIS / "quotes.csv"))
    assert len(quotes) == 9_999
    # exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount
    # binance-futures,BTCUSDT,1582329601096000,1582329603502092,0.84,9682,9681.92,0.67
    assert quotes[0] == Quote(
        "binanceusdm",
        "BTC/USDT:USDT",
        Decimal("9681.92"),
        Decimal("0.67"),
        Decimal("9682"),
        Decimal("0.84"),
        from_epoch_us(1582329601096000),
        from_epoch_us(1582329603502092),
    )


# ---- nautilus parquet and Binance depth CSV --------------------------------------------------


def test_nautilus_trades_take_symbol_from_instrument_text_and_floats_by_shortest_repr(shared_data: Path) -> None:
    trades = list(read_events(shared_data / NAUTILUS / "btcusdt-trades.parquet"))
    assert len(trades) == 2_001
    first, last = trades[0], trades[-1]
    assert first.key == "binance:BTC/USDT"
    # 2021-01-08 00:00:00.278 553287559 39432.48 0.000263 buyer_maker=True
    assert (first.trade_id, str(first.price), str(first.amount), first.side) == (
        "553287559",
        "39432.48",
        "0.000263",
        Side.SELL,
    )
    assert first.ts_event == datetime(2021, 1, 8, 0, 0, 0, 278000, tzinfo=UTC)
    # stored as the float 0.014596000000000001: the instrument's size_precision=6 removes the noise
    assert (last.trade_id, str(last.price), str(last.amount), last.side) == (
        "553289559",
        "39491.76",
        "0.014596",
        Side.SELL,
    )
    assert trades[1].side is Side.BUY  # buyer_maker False: the buyer took liquidity
    assert all(t.amount.as_tuple().exponent == -6 and t.price.as_tuple().exponent == -2 for t in trades)


def test_nautilus_value_off_the_instrument_grid_is_refused_not_rounded(shared_data: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(shared_data / NAUTILUS / "btcusdt-trades.parquet").slice(0, 5)
    quantities = table.column("quantity").to_pylist()
    quantities[2] += 0.0000004  # 0.000311 -> 0.0003114: a real difference, not float noise
    table = table.set_column(table.schema.get_field_index("quantity"), "quantity", [quantities])
    pq.write_table(table, tmp_path / "btcusdt-trades.parquet")
    (tmp_path / "btcusdt-instrument.txt").write_bytes((shared_data / NAUTILUS / "btcusdt-instrument.txt").read_bytes())
    refused: list[tuple[bytes, QuarantineRecord]] = []
    events = list(read_events(tmp_path / "btcusdt-trades.parquet", on_error=lambda r, e: refused.append((r, e))))
    assert len(events) == 4
    ((raw, err),) = refused
    assert err.reason == "off_grid" and "6 decimals" in err.detail
    assert json.loads(raw)["trade_id"] == 553287561


def test_nautilus_quotes_use_the_symbol_column(shared_data: Path) -> None:
    quotes = list(read_events(shared_data / NAUTILUS / "btcusdt-quotes.parquet"))
    assert len(quotes) == 451
    assert {q.key for q in quotes} == {"binance:BTC/USDT"}
    assert quotes[0].ts_event == datetime(2021, 1, 8, 0, 0, 1, 76000, tzinfo=UTC)
    assert quotes[0].bid_price == Decimal("39432.99") and quotes[0].bid_amount == Decimal("0.0031")


def test_binance_depth_csv_groups_rows_into_one_snapshot_and_one_delta(shared_data: Path) -> None:
    (snap,) = read_events(shared_data / NAUTILUS / "btcusdt-depth-snap.csv")
    assert isinstance(snap, BookSnapshot)
    # BTCUSDT,1667346579146,2098021528332,2098021528332,b,snap,20377.00,1.770,-1
    assert (snap.key, snap.sequence, len(snap.bids), snap.asks) == (
        "binanceusdm:BTC/USDT:USDT",
        2098021528332,
        100,
        (),
    )
    assert snap.bids[0] == (Decimal("20377.00"), Decimal("1.770"))
    assert str(snap.bids[0][0]) == "20377.00"
    assert snap.ts_event == from_epoch_ms(1667346579146)
    (delta,) = read_events(shared_data / NAUTILUS / "btcusdt-depth-update.csv")
    assert isinstance(delta, BookDelta)
    # ...,1667347199939,2098041693435,2098041696700,a,set,20472.80,0.000,2098041693400
    assert (delta.first_sequence, delta.sequence) == (2098041693400 + 1, 2098041696700)
    assert (len(delta.bids), len(delta.asks)) == (23, 77)
    assert delta.asks[0] == (Decimal("20472.80"), Decimal("0.000"))


# ---- freqtrade / ccxt trades -----------------------------------------------------------------


def test_freqtrade_trades_json_and_feather_agree_record_by_record(shared_data: Path) -> None:
    from_json = list(read_events(shared_data / FREQTRADE / "XRP_ETH-trades.json.gz"))
    from_feather = list(read_events(shared_data / FREQTRADE / "XRP_ETH-trades.feather"))
    assert len(from_json) == len(from_feather) == 12_477
    assert from_json == from_feather
    # [1570752011620,"13519807",null,"sell",0.00141342,23.0,0.03250866]
    first = from_json[0]
    assert (first.key, first.trade_id, str(first.price), first.amount, first.side) == (
        "binance:XRP/ETH",
        "13519807",
        "0.00141342",
        Decimal("23"),
        Side.SELL,
    )
    assert first.ts_event == from_epoch_ms(1570752011620)
    # ...[1570965568844,"13532283",null,"sell",0.00152787,130.0,0.1986231]]
    assert from_json[-1].trade_id == "13532283" and str(from_json[-1].price) == "0.00152787"


def test_freqtrade_candles_rebuild_exactly_from_its_trades(shared_data: Path) -> None:
    """Parity with an independent reference: the 1m/5m candles freqtrade built from these trades."""
    trades = list(read_events(shared_data / FREQTRADE / "XRP_ETH-trades.feather"))
    for timeframe, seconds in (("1m", 60), ("5m", 300)):
        bars: dict[datetime, list[Decimal]] = {}
        for t in trades:
            assert isinstance(t, Trade)
            start = datetime.fromtimestamp(int(t.ts_event.timestamp()) // seconds * seconds, UTC)
            bar = bars.get(start)
            if bar is None:
                bars[start] = [t.price, t.price, t.price, t.price, t.amount]
            else:
                bar[1], bar[2], bar[3], bar[4] = max(bar[1], t.price), min(bar[2], t.price), t.price, bar[4] + t.amount
        candles = list(read_events(shared_data / FREQTRADE / f"XRP_ETH-{timeframe}.feather"))
        assert len(candles) == len(bars)
        for c in candles:
            assert isinstance(c, Candle) and c.timeframe == timeframe
            assert bars[c.ts_event] == [c.open, c.high, c.low, c.close, c.volume], c


# ---- OHLCV -----------------------------------------------------------------------------------


def test_binance_1h_feather_has_the_whole_history(shared_data: Path) -> None:
    candles = list(read_events(shared_data / "candles/binance-1h/BTC_USDT-1h.feather"))
    assert len(candles) == 58_419
    first, last = candles[0], candles[-1]
    assert isinstance(first, Candle) and isinstance(last, Candle)
    assert (first.key, first.timeframe, first.ts_event) == (
        "binance:BTC/USDT",
        "1h",
        datetime(2017, 8, 17, 4, tzinfo=UTC),
    )
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        Decimal("4261.48"),
        Decimal("4313.62"),
        Decimal("4261.32"),
        Decimal("4308.83"),
        Decimal("47.181009"),
    )
    assert str(last.volume) == "637.65276" and last.ts_event == datetime(2024, 4, 21, 14, tzinfo=UTC)
    # a closed bar is known at its close: receive time is open + timeframe
    assert first.ts_recv == first.ts_event + timedelta(hours=1)


def test_json_candles_keep_the_text_digits(shared_data: Path) -> None:
    events = read_events(shared_data / "candles/binance-1m-2021/BTC_USDT-1m.json")
    first = next(events)
    # [[1618951320000,56738.76,56840.3,56733.23,56813.98,50.9752],...
    assert isinstance(first, Candle)
    assert (first.key, first.timeframe, first.ts_event) == ("binance:BTC/USDT", "1m", from_epoch_ms(1618951320000))
    assert [str(v) for v in (first.open, first.high, first.low, first.close, first.volume)] == [
        "56738.76",
        "56840.3",
        "56733.23",
        "56813.98",
        "50.9752",
    ]


def test_ftx_csv_naive_times_are_utc_and_name_gives_symbol_and_timeframe(shared_data: Path) -> None:
    path = shared_data / "candles/ftx-1m/btc-perp-20211231-20220201_1m.csv"
    candles = list(itertools.islice(read_events(path), 1_000))
    first = candles[0]
    assert isinstance(first, Candle)
    # 2021-12-31 23:01:00.000000,46319.0,46385.0,46319.0,46377.0,2300413.7295
    assert (first.key, first.timeframe, first.ts_event) == (
        "ftx:BTC/USD:USD",
        "1m",
        datetime(2021, 12, 31, 23, 1, tzinfo=UTC),
    )
    assert (first.open, first.volume) == (Decimal("46319.0"), Decimal("2300413.7295"))
    steps = {b.ts_event - a.ts_event for a, b in itertools.pairwise(candles)}
    assert steps == {timedelta(minutes=1)}  # no gaps, as the README says


def test_overrides_replace_what_the_file_says(shared_data: Path) -> None:
    path = shared_data / "candles/binance-1h/ETH_BTC-1h.feather"
    first = next(read_events(path, exchange="binanceus", symbol="ETH/BTC", timeframe="1h"))
    assert first.key == "binanceus:ETH/BTC"
    trade = next(read_events(shared_data / SPOT / "ethusdt_20240808.gz", exchange="bn", symbol="ETH/USDT"))
    assert trade.key == "bn:ETH/USDT"
    with pytest.raises(ValueError, match="timeframe"):
        read_events(path, timeframe="1 hour")
    with pytest.raises(ValueError, match="not a known replay format"):
        read_events(path, fmt="csv-of-dreams")
