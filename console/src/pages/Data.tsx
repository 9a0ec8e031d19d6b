// The symbol view (candles with our fills), backtest reports (with a side-by-side of two runs),
// validation runs and dead letters.
import { useState } from "react";
import {
  query,
  useResource,
  type BacktestReport,
  type DeadLetterCount,
  type Freshness,
  type ModelScore,
  type SymbolChart,
  type ValidationRun,
} from "../api";
import { CandleChart } from "../components/Charts";
import { Panel } from "../components/Panel";
import { formatDecimal, formatUtc } from "../format";
import { useLiveVersion } from "../live";
import { FillsTable } from "./Trading";

const INTERVALS: [string, number][] = [
  ["1 s", 1],
  ["10 s", 10],
  ["1 min", 60],
  ["5 min", 300],
  ["1 h", 3600],
];

export function SymbolPage() {
  const instruments = useResource<Freshness[]>("/api/freshness");
  const [key, setKey] = useState<string>();
  const [interval, setInterval] = useState(60);
  const chosen = key ?? instruments.data?.[0]?.key;
  const version = useLiveVersion("fills.v1");
  const chart = useResource<SymbolChart>(chosen ? `/api/candles${query({ key: chosen, interval, limit: 500 })}` : null, version);
  if (!chosen) {
    return (
      <Panel title="Symbol" resource={instruments} testId="symbol-panel" empty={() => "No market data stored yet."}>
        {() => null}
      </Panel>
    );
  }
  return (
    <Panel
      title={`Symbol ${chosen}`}
      resource={chart}
      testId="symbol-panel"
      actions={
        <>
          <select aria-label="instrument" value={chosen} onChange={(e) => setKey(e.target.value)}>
            {(instruments.data ?? []).map((f) => (
              <option key={f.key}>{f.key}</option>
            ))}
          </select>
          <select aria-label="interval" value={interval} onChange={(e) => setInterval(Number(e.target.value))}>
            {INTERVALS.map(([label, s]) => (
              <option key={s} value={s}>
                {label}
              </option>
            ))}
          </select>
        </>
      }
      empty={(d) => (d.candles.length ? null : `No trades stored for ${d.key}.`)}
    >
      {(d) => (
        <>
          <CandleChart candles={d.candles} fills={d.fills} signals={d.signals} interval={d.interval_seconds} />
          <p className="muted">
            {d.candles.length} {d.source === "candles" ? "stored candles" : "bars built from stored trades"} from {formatUtc(d.candles[0].ts, false)} to {formatUtc(d.candles[d.candles.length - 1].ts, false)}; last close{" "}
            {formatDecimal(d.candles[d.candles.length - 1].close)}; {d.fills.length} of our fills (arrows) and {d.signals.length} signals (dots) marked.
          </p>
          <FillsTable rows={d.fills} />
        </>
      )}
    </Panel>
  );
}

type ReportJson = { metadata?: Record<string, unknown>; metrics?: Record<string, unknown> } & Record<string, unknown>;

function show(value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function ReportsPage() {
  const reports = useResource<BacktestReport[]>("/api/reports");
  const [picked, setPicked] = useState<string[]>([]);
  const [opened, setOpened] = useState<BacktestReport>();
  const toggle = (name: string) =>
    setPicked((p) => (p.includes(name) ? p.filter((n) => n !== name) : [...p, name].slice(-2)));
  const pickedReports = (reports.data ?? []).filter((r) => picked.includes(r.name) && r.json_url);
  return (
    <div className="grid">
      <Panel title="Backtest reports" resource={reports} testId="reports-panel" empty={(d) => (d.length ? null : "No report folders in the reports directory yet.")}>
        {(rows) => (
          <table>
            <thead>
              <tr>
                <th>Compare</th>
                <th>Run</th>
                <th>Written</th>
                <th>Report</th>
                <th>Data</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.name}>
                  <td>
                    <input type="checkbox" aria-label={`compare ${r.name}`} disabled={!r.has_json} checked={picked.includes(r.name)} onChange={() => toggle(r.name)} />
                  </td>
                  <td>{r.name}</td>
                  <td>{formatUtc(r.modified_at, false)}</td>
                  <td>
                    {r.html_url ? (
                      <>
                        <button className="link" onClick={() => setOpened(r)}>
                          open here
                        </button>{" "}
                        <a href={r.html_url} target="_blank" rel="noopener noreferrer">
                          new tab
                        </a>
                      </>
                    ) : (
                      "—"
                    )}
                  </td>
                  <td>{r.json_url ? <a href={r.json_url}>report.json</a> : "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Panel>
      {pickedReports.length === 2 && <Comparison a={pickedReports[0]} b={pickedReports[1]} />}
      {opened?.html_url && (
        <section className="panel">
          <header>
            <h2>{opened.name}</h2>
            <button onClick={() => setOpened(undefined)}>close</button>
          </header>
          <iframe className="report-frame" title={`report ${opened.name}`} src={opened.html_url} sandbox="allow-same-origin" />
        </section>
      )}
    </div>
  );
}

function Comparison({ a, b }: { a: BacktestReport; b: BacktestReport }) {
  const left = useResource<ReportJson>(a.json_url);
  const right = useResource<ReportJson>(b.json_url);
  const both = {
    data: left.data && right.data ? [left.data, right.data] : undefined,
    error: left.error ?? right.error,
    loading: left.loading || right.loading,
    reload: () => {
      left.reload();
      right.reload();
    },
  };
  return (
    <Panel title={`Side by side: ${a.name} vs ${b.name}`} resource={both} testId="comparison-panel">
      {([x, y]) => {
        const sections: ["metadata" | "metrics", string][] = [
          ["metrics", "Metrics"],
          ["metadata", "Run"],
        ];
        return (
          <table>
            <thead>
              <tr>
                <th />
                <th>{a.name}</th>
                <th>{b.name}</th>
              </tr>
            </thead>
            <tbody>
              {sections.flatMap(([section, label]) => {
                const keys = [...new Set([...Object.keys(x[section] ?? {}), ...Object.keys(y[section] ?? {})])];
                return [
                  <tr key={section} className="section">
                    <th colSpan={3}>{label}</th>
                  </tr>,
                  ...keys.map((k) => {
                    const va = show(x[section]?.[k]);
                    const vb = show(y[section]?.[k]);
                    return (
                      <tr key={`${section}.${k}`} className={va !== vb ? "differs" : ""}>
                        <td>{k}</td>
                        <td className="num">{va}</td>
                        <td className="num">{vb}</td>
                      </tr>
                    );
                  }),
                ];
              })}
            </tbody>
          </table>
        );
      }}
    </Panel>
  );
}

function score(value: number | null): string {
  // Model scores are statistics, not money: floats, shown to 4 places.
  return value === null ? "—" : value.toFixed(4);
}

export function ValidationPage() {
  const runs = useResource<ValidationRun[]>("/api/validation");
  const dead = useResource<DeadLetterCount[]>("/api/dead-letters");
  const models = useResource<ModelScore[]>("/api/models");
  return (
    <div className="grid">
      <Panel title="Model scores" resource={models} testId="models-panel" empty={(d) => (d.length ? null : "No model scores stored yet.")}>
        {(rows) => (
          <table>
            <thead>
              <tr>
                <th>Model</th>
                <th>Instrument</th>
                <th>As of</th>
                <th className="num">Labels</th>
                <th className="num">Log loss</th>
                <th className="num">ROC AUC</th>
                <th className="num">Accuracy</th>
                <th className="num">Brier</th>
                <th className="num">Rolling accuracy</th>
                <th>Drift</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((m) => (
                <tr key={`${m.model_version}:${m.symbol}`}>
                  <td>{m.model_version}</td>
                  <td>{m.symbol}</td>
                  <td>{formatUtc(m.ts_event, false)}</td>
                  <td className="num">{m.n_labels}</td>
                  <td className="num">{score(m.log_loss)}</td>
                  <td className="num">{score(m.roc_auc)}</td>
                  <td className="num">{score(m.accuracy)}</td>
                  <td className="num">{score(m.brier)}</td>
                  <td className="num">{score(m.rolling_accuracy)}</td>
                  <td>{m.drift_events === 0 ? "none" : `${m.drift_events}, last ${m.last_drift_action} at ${formatUtc(m.last_drift_at, false)}`}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Panel>
      <Panel title="Validation runs" resource={runs} testId="validation-panel" empty={(d) => (d.length ? null : "No `bot4 validate` run recorded.")}>
        {(rows) => (
          <table>
            <thead>
              <tr>
                <th>Started</th>
                <th>Run</th>
                <th>Tables</th>
                <th>Outcome</th>
                <th className="num">Rows</th>
                <th className="num">Failed checks</th>
                <th>Report</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.run_id}>
                  <td>{formatUtc(r.started_at, false)}</td>
                  <td>
                    <code>{r.run_id}</code>
                  </td>
                  <td>{r.tables.join(", ")}</td>
                  <td className={r.success ? "gain" : "loss"}>{r.success ? "passed" : "FAILED"}</td>
                  <td className="num">{r.rows_validated.toLocaleString("en-US")}</td>
                  <td className="num">{r.failed_checks}</td>
                  <td>
                    {r.report_url ? (
                      <a href={r.report_url} target="_blank" rel="noopener noreferrer">
                        open report
                      </a>
                    ) : (
                      "—"
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Panel>
      <Panel title="Dead letters" resource={dead} testId="dlq-panel" empty={(d) => (d.length ? null : "No dead letters stored.")}>
        {(rows) => (
          <table>
            <thead>
              <tr>
                <th>Key</th>
                <th>Stage</th>
                <th>Reason</th>
                <th className="num">Count</th>
                <th>Last</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={`${r.key}:${r.stage}:${r.reason}`}>
                  <td>{r.key ?? "—"}</td>
                  <td>{r.stage}</td>
                  <td>{r.reason}</td>
                  <td className="num">{r.count}</td>
                  <td>{formatUtc(r.last_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Panel>
    </div>
  );
}
