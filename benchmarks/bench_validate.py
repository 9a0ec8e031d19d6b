"""Validation throughput: ``bot4 validate --table md_trades`` over 1,000,000 stored trades.

Data: every real trade in ../shared/data with a unique (exchange, symbol, id) (bench_ingest.py's
80,209: the Binance spot and USD-M captures, the Tardis futures trades, the nautilus parquet trades,
freqtrade's XRP/ETH trades), written by the storage writer into a scratch database (created,
migrated, dropped at the end; nothing else on the server is touched). 80k real trades are not 1M,
so the table is then filled to 1,000,000 rows with copies of those trades: copy k of an
instrument follows copy k-1 directly (every time shifted by k times the instrument's capture span
plus one second, numeric trade ids raised by k * 10^10), as if the capture had gone on 13 times as
long. The copies keep every property the suites check (ids unique and in time order, prices
positive), so the run must pass; it does the same work per row as on the originals.

Each run is the real command in a child process (``bot4 validate --table md_trades --no-progress``
with ``BOT4_POSTGRES__DBNAME`` set to the scratch database): wall time, rows/s, and the child's peak
resident memory (``ru_maxrss`` of the waited-for child). The same command also runs over a database
holding only the 80k real trades, to show that memory does not grow with the table: each UTC day is
one batch whose metrics PostgreSQL computes. PostgreSQL's own memory is not in the figure. The
scratch databases are dropped at the end, also when a run fails.

    .venv/bin/python benchmarks/bench_validate.py [--repeat 3] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_ingest import load_trades  # noqa: E402

from flows.settings import PostgresSettings  # noqa: E402
from flows.storage.migrate import migrate  # noqa: E402
from flows.storage.sink import PostgresWriter  # noqa: E402

ID_STEP = 10**10

#: Copies of every instrument's trades, each right after the previous (see the module docstring).
REPLICATE = """
WITH span AS (
    SELECT exchange, symbol, max(ts_event) - min(ts_event) + interval '1 second' AS d
    FROM md_trades GROUP BY exchange, symbol
), copies AS (
    SELECT t.exchange, t.symbol,
           CASE WHEN t.trade_id ~ '^[0-9]+$' THEN (t.trade_id::numeric + k * %(step)s)::text
                ELSE t.trade_id || '-' || k END AS trade_id,
           t.price, t.amount, t.side, t.ts_event + k * s.d AS ts_event, t.ts_recv + k * s.d AS ts_recv
    FROM md_trades AS t JOIN span AS s USING (exchange, symbol)
    CROSS JOIN generate_series(1, %(copies)s) AS k
    ORDER BY k, t.ts_event, t.trade_id
    LIMIT %(missing)s
)
INSERT INTO md_trades (exchange, symbol, trade_id, price, amount, side, ts_event, ts_recv)
SELECT * FROM copies
"""


def create_database(rows: int | None) -> tuple[str, int, float]:
    """A migrated scratch database holding the real trades, filled up to ``rows`` with copies
    (None: the real trades only); (name, real trades, load seconds)."""
    name = f"bot4_bench_validate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PostgresSettings(dbname="postgres").conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        conninfo = PostgresSettings(dbname=name).conninfo()
        started = time.perf_counter()
        migrate(conninfo)
        trades, _ = load_trades()
        writer = PostgresWriter(conninfo)
        writer.write(trades)
        writer.close()
        real = len(trades)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            if rows is not None and rows > real:
                copies = -(-rows // real) - 1
                conn.execute(REPLICATE, {"step": ID_STEP, "copies": copies, "missing": rows - real})
            conn.execute("VACUUM ANALYZE md_trades")
            stored = conn.execute("SELECT count(*) FROM md_trades").fetchone()
        expected = real if rows is None else rows
        assert stored is not None and stored[0] == expected, f"md_trades holds {stored}, expected {expected}"
    except BaseException:
        drop_database(name)
        raise
    return name, real, time.perf_counter() - started


def drop_database(name: str) -> None:
    with psycopg.connect(PostgresSettings(dbname="postgres").conninfo(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run_validate(db: str, out: Path) -> dict[str, float | int | bool]:
    """``bot4 validate`` on md_trades in a child process: seconds, its peak RSS, days and rows."""
    env = {**os.environ, "BOT4_POSTGRES__DBNAME": db, "BOT4_DATA_DIR": str(out)}
    out.mkdir(parents=True)
    with (out / "stdout").open("w") as stdout, (out / "stderr").open("w") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "bot4"), "validate", "--table", "md_trades", "--no-progress"],
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
        # wait4: the resource usage of this child alone (ru_maxrss in KiB on Linux).
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"bot4 validate exited {proc.returncode}: see {out}/stdout and stderr")
    summary = json.loads((out / "quality" / "summary.json").read_text())
    table = summary["tables"][0]
    batches = [b for b in table["batches"] if b["day"] != "schema"]
    return {
        "seconds": seconds,
        "validate_seconds": summary["seconds"],
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "rows": table["rows"],
        "days": len(batches),
        "max_rows_per_day": max(b["rows"] for b in batches),
        "success": summary["success"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    runs: dict[str, list[dict[str, float | int | bool]]] = {"real": [], "full": []}
    loads: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # The real trades alone first, then the 1M table: the same suite, 12x the rows.
        for name, rows in (("real", None), ("full", args.rows)):
            db, real, loads[name] = create_database(rows)
            try:
                for i in range(args.repeat):
                    runs[name].append(run_validate(db, Path(tmp) / f"{name}{i}"))
            finally:
                drop_database(db)

    def med(name: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in runs[name])

    result: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_end": os.getloadavg()[0],
        "real_trades": real,
        "load_seconds": loads,
    }
    for name, rs in runs.items():
        rows = int(rs[0]["rows"])
        result[name] = {
            "rows": rows,
            "days": rs[0]["days"],
            "max_rows_per_day": rs[0]["max_rows_per_day"],
            "seconds": [round(float(r["seconds"]), 2) for r in rs],
            "rows_per_s_median": round(rows / med(name, "seconds")),
            "rows_per_s_best": round(rows / min(float(r["seconds"]) for r in rs)),
            "validate_seconds_median": med(name, "validate_seconds"),
            "cpu_seconds_median": med(name, "cpu_seconds"),
            "peak_rss_mib": max(float(r["peak_rss_mib"]) for r in rs),
            "passed": all(bool(r["success"]) for r in rs),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
