import { useState } from "react";
import {
  query,
  useResource,
  type Account,
  type EquityCurve,
  type Freshness,
  type Position,
  type RiskState,
  type StrategyStatus,
} from "../api";
import { EquityChart } from "../components/Charts";
import { Panel, StateBadge } from "../components/Panel";
import { absDec, addDec, parseDec, sumDec, type Dec } from "../decimal";
import { formatAge, formatDec, formatDecimal, formatPercent, formatPnl, formatUtc, pnlSign } from "../format";
import { useLive, useLiveVersion } from "../live";

const STALE_SECONDS = 60;

interface Props {
  accounts: Account[];
  onReset: (account: string, breakers: string[]) => void;
  onStrategy: (kind: "pause" | "resume", account: string, strategy: string, strategies: string[]) => void;
  commandsEnabled: boolean;
}

export function Overview({ accounts, onReset, onStrategy, commandsEnabled }: Props) {
  const riskVersion = useLiveVersion("risk.decisions.v1", "control.commands.v1");
  const fillsVersion = useLiveVersion("fills.v1");
  const risk = useResource<RiskState[]>("/api/risk", riskVersion);
  // Signals are stored by their own sink and have no live event here: the fills that follow them
  // (and every decision or command) reload the list.
  const strategies = useResource<StrategyStatus[]>("/api/strategies", riskVersion + fillsVersion);
  const positions = useResource<Position[]>("/api/positions", fillsVersion);
  const freshness = useResource<Freshness[]>("/api/freshness", fillsVersion);
  const [chosen, setChosen] = useState<string>();
  const account = chosen ?? accounts[0]?.account;
  const equity = useResource<EquityCurve>(account ? `/api/equity${query({ account })}` : null, fillsVersion);

  return (
    <div className="grid">
      <Panel title="Risk state" resource={risk} testId="risk-panel" empty={(d) => (d.length ? null : "No account has a recorded risk decision or command yet.")}>
        {(rows) => (
          <table>
            <thead>
              <tr>
                <th>Account</th>
                <th>State</th>
                <th>Since</th>
                <th>Breakers</th>
                <th>Awaiting the risk engine</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.account} data-testid={`risk-${r.account}`}>
                  <td>{r.account}</td>
                  <td>
                    <StateBadge state={r.trading_state} />
                  </td>
                  <td title={r.last_change_reason ?? ""}>{formatUtc(r.since)}</td>
                  <td>
                    {r.breakers.length === 0
                      ? "none tripped"
                      : r.breakers.map((b) => (
                          <div key={b.name} title={b.reason}>
                            <span className={`breaker breaker-${b.status}`}>{b.name}</span> {b.status} — {b.reason}
                          </div>
                        ))}
                  </td>
                  <td>
                    {r.pending_commands.length === 0
                      ? "—"
                      : r.pending_commands.map((c) => (
                          <div key={c.id}>
                            {c.kind} by {c.requested_by} at {formatUtc(c.ts, false)}
                          </div>
                        ))}
                  </td>
                  <td>
                    {commandsEnabled && r.trading_state !== "active" && r.trading_state !== null && (
                      <button onClick={() => onReset(r.account, r.breakers.filter((b) => b.status !== "closed").map((b) => b.name))}>
                        Reset…
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Panel>

      <Panel
        title="Strategies"
        resource={strategies}
        testId="strategies-panel"
        empty={(d) => (d.length ? null : "No strategy has a stored signal or a pause/resume command yet.")}
      >
        {(rows) => (
          <table>
            <thead>
              <tr>
                <th>Account</th>
                <th>Strategy</th>
                <th>Status</th>
                <th>Last pause/resume</th>
                <th className="num">Signals</th>
                <th>Last signal</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {rows.map((s) => (
                <tr key={`${s.account}:${s.strategy}`} data-testid={`strategy-${s.account}-${s.strategy}`}>
                  <td>{s.account}</td>
                  <td>{s.strategy}</td>
                  <td className={s.paused ? "warn" : ""}>{s.paused ? "paused" : "running"}</td>
                  <td>
                    {s.last_command
                      ? `${s.last_command.kind === "pause_strategy" ? "paused" : "resumed"} by ${s.last_command.requested_by} at ${formatUtc(s.last_command.ts, false)}: ${s.last_command.reason}`
                      : "—"}
                  </td>
                  <td className="num">{s.signals}</td>
                  <td>{formatUtc(s.last_signal_at)}</td>
                  <td>
                    {commandsEnabled && (
                      <button
                        onClick={() =>
                          onStrategy(
                            s.paused ? "resume" : "pause",
                            s.account,
                            s.strategy,
                            rows.filter((o) => o.account === s.account).map((o) => o.strategy),
                          )
                        }
                      >
                        {s.paused ? "Resume…" : "Pause…"}
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Panel>

      <Panel title="PnL and exposure" resource={positions} testId="pnl-panel" empty={(d) => (d.length ? null : "No fills stored yet: nothing held, nothing earned.")}>
        {(rows) => <PnlSummary positions={rows} />}
      </Panel>

      <Panel
        title="Equity and drawdown"
        resource={equity}
        testId="equity-panel"
        actions={
          accounts.length > 1 && (
            <select value={account} onChange={(e) => setChosen(e.target.value)} aria-label="account">
              {accounts.map((a) => (
                <option key={a.account}>{a.account}</option>
              ))}
            </select>
          )
        }
        empty={(d) => (d.points.length ? null : `No equity rows recorded for ${d.account} (the equity table is written by the trading flow).`)}
      >
        {(curve) => (
          <>
            <EquityChart points={curve.points} />
            <p className="muted">
              Latest equity {formatDecimal(curve.points[curve.points.length - 1].equity, 2)}, drawdown{" "}
              {formatPercent(curve.points[curve.points.length - 1].drawdown)}, worst {formatPercent(curve.max_drawdown)}.
            </p>
          </>
        )}
      </Panel>

      <Panel title="Positions" resource={positions} testId="positions-panel" empty={(d) => (d.length ? null : "No positions: no fills stored.")}>
        {(rows) => <PositionsTable rows={rows} />}
      </Panel>

      <Panel title="Data freshness and dead letters" resource={freshness} testId="freshness-panel" empty={(d) => (d.length ? null : "No market data stored yet.")}>
        {(rows) => (
          <table>
            <thead>
              <tr>
                <th>Instrument</th>
                <th>Last trade</th>
                <th>Last quote</th>
                <th>Last candle</th>
                <th className="num">Age</th>
                <th className="num">Dead letters</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((f) => (
                <tr key={f.key}>
                  <td>{f.key}</td>
                  <td>{formatUtc(f.last_trade_at)}</td>
                  <td>{formatUtc(f.last_quote_at)}</td>
                  <td>{formatUtc(f.last_candle_at)}</td>
                  <td className={`num ${f.age_seconds !== null && f.age_seconds > STALE_SECONDS ? "stale" : ""}`}>
                    {formatAge(f.age_seconds)}
                  </td>
                  <td className={`num ${f.dead_letters > 0 ? "warn" : ""}`}>{f.dead_letters}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Panel>

      <LiveFeed />
    </div>
  );
}

function PnlSummary({ positions }: { positions: Position[] }) {
  const byAccount = new Map<string, Position[]>();
  for (const p of positions) byAccount.set(`${p.account} ${p.quote_currency}`, [...(byAccount.get(`${p.account} ${p.quote_currency}`) ?? []), p]);
  return (
    <table>
      <thead>
        <tr>
          <th>Account</th>
          <th className="num">Realized</th>
          <th className="num">Unrealized</th>
          <th className="num">Fees</th>
          <th className="num">Net PnL</th>
          <th className="num">Gross exposure</th>
          <th className="num">Net exposure</th>
        </tr>
      </thead>
      <tbody>
        {[...byAccount.entries()].map(([key, rows]) => {
          const realized = sumDec(rows.map((r) => r.realized_pnl));
          const unrealized = sumDec(rows.map((r) => r.unrealized_pnl));
          const fees = sumDec(rows.map((r) => r.fees));
          const net: Dec = addDec(addDec(realized, unrealized), { units: -fees.units, scale: fees.scale });
          const gross = rows.reduce<Dec>((acc, r) => addDec(acc, absDec(parseDec(r.notional))), { units: 0n, scale: 0 });
          const netExposure = sumDec(rows.map((r) => r.notional));
          return (
            <tr key={key}>
              <td>{key}</td>
              <td className={`num ${pnlSign(realized)}`}>{formatPnl(realized)}</td>
              <td className={`num ${pnlSign(unrealized)}`}>{formatPnl(unrealized)}</td>
              <td className="num">{formatDec(fees, 2)}</td>
              <td className={`num ${pnlSign(net)}`} data-testid="net-pnl">
                {formatPnl(net)}
              </td>
              <td className="num">{formatDec(gross, 2)}</td>
              <td className="num">{formatDec(netExposure, 2)}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

export function PositionsTable({ rows }: { rows: Position[] }) {
  return (
    <table>
      <thead>
        <tr>
          <th>Account</th>
          <th>Instrument</th>
          <th className="num">Amount</th>
          <th className="num">Avg price</th>
          <th className="num">Mark</th>
          <th className="num">Notional</th>
          <th className="num">Unrealized</th>
          <th className="num">Realized</th>
          <th className="num">Fills</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((p) => (
          <tr key={`${p.account}:${p.exchange}:${p.symbol}`}>
            <td>{p.account}</td>
            <td>
              {p.exchange}:{p.symbol}
            </td>
            <td className="num">{formatDecimal(p.amount)}</td>
            <td className="num">{formatDecimal(p.average_price, 2)}</td>
            <td className="num" title={p.mark_source === "trade" ? `last stored trade at ${formatUtc(p.mark_at)}` : "last fill price (no stored trade)"}>
              {formatDecimal(p.mark, 2)}
            </td>
            <td className="num">{formatDecimal(p.notional, 2)}</td>
            <td className={`num ${pnlSign(p.unrealized_pnl)}`}>{formatPnl(p.unrealized_pnl)}</td>
            <td className={`num ${pnlSign(p.realized_pnl)}`}>{formatPnl(p.realized_pnl)}</td>
            <td className="num">{p.fills}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function LiveFeed() {
  const live = useLive();
  return (
    <section className="panel" data-testid="live-panel">
      <header>
        <h2>Live events</h2>
        <span className={live.connected ? "ok" : "warn"}>{live.connected ? "connected" : "not connected"}</span>
      </header>
      {live.recent.length === 0 ? (
        <div className="empty">Nothing on fills.v1, orders.v1, risk.decisions.v1 or control.commands.v1 since this page opened.</div>
      ) : (
        <ul className="feed">
          {live.recent.slice(0, 30).map((e, i) => (
            <li key={i}>
              <code>{e.topic}</code> {e.type} {e.account ?? ""} {String(e.kind ?? e.status_after ?? e.side ?? "")}{" "}
              {e.ts_event || e.ts ? formatUtc(String(e.ts_event ?? e.ts)) : ""}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
