// The console API's shapes (see /openapi.json) and how the UI reads them.
import { useCallback, useEffect, useRef, useState } from "react";

export interface Info {
  mode: string;
  commands_enabled: boolean;
  read_only: boolean;
  token_configured: boolean;
  reports_dir: string;
  live_topics: string[];
  absent: string[];
}
export interface Account {
  account: string;
  trading_state: string | null;
  state_since: string | null;
  orders: number;
  open_orders: number;
  fills: number;
  last_fill_at: string | null;
}
export interface Position {
  account: string;
  exchange: string;
  symbol: string;
  quote_currency: string;
  amount: string;
  average_price: string | null;
  mark: string;
  mark_source: "trade" | "fill";
  mark_at: string | null;
  notional: string;
  realized_pnl: string;
  unrealized_pnl: string;
  fees: string;
  fills: number;
}
export interface Order {
  client_order_id: string;
  account: string;
  strategy: string;
  exchange: string;
  symbol: string;
  side: string;
  order_type: string;
  amount: string;
  limit_price: string | null;
  status: string;
  venue_order_id: string | null;
  ts_created: string;
  ts_updated: string;
  filled: string;
}
export interface OrderEvent {
  seq: number;
  event: string;
  status_before: string;
  status_after: string;
  detail: Record<string, unknown>;
  ts_event: string;
}
export interface Fill {
  exchange: string;
  fill_id: string;
  client_order_id: string;
  account: string;
  symbol: string;
  side: string;
  price: string;
  amount: string;
  notional: string;
  fee: string;
  fee_currency: string | null;
  liquidity: string | null;
  ts_event: string;
}
export interface OrderDetail {
  order: Order;
  events: OrderEvent[];
  fills: Fill[];
}
export interface EquityPoint {
  ts_event: string;
  equity: string;
  cash: string;
  gross_exposure: string;
  net_exposure: string;
  realized_pnl: string;
  unrealized_pnl: string;
  peak_equity: string;
  drawdown: string;
}
export interface EquityCurve {
  account: string;
  points: EquityPoint[];
  max_drawdown: string | null;
}
export interface Reason {
  code: string;
  message: string;
}
export interface Decision {
  decision_id: string;
  account: string;
  client_order_id: string | null;
  kind: string;
  trading_state: string;
  reasons: Reason[];
  detail: Record<string, unknown>;
  ts_event: string;
}
export interface Breaker {
  name: string;
  status: string;
  reason: string;
  since: string;
}
export interface CommandRecord {
  id: number;
  kind: string;
  account: string;
  breaker: string | null;
  strategy: string | null;
  requested_by: string;
  reason: string;
  via: string;
  ts: string;
  recorded_at: string;
}
export interface StrategyStatus {
  account: string;
  strategy: string;
  paused: boolean;
  last_command: CommandRecord | null;
  signals: number;
  last_signal_at: string | null;
}
export interface RiskState {
  account: string;
  trading_state: string | null;
  since: string | null;
  last_change_reason: string | null;
  breakers: Breaker[];
  pending_commands: CommandRecord[];
}
export interface Freshness {
  key: string;
  exchange: string;
  symbol: string;
  last_trade_at: string | null;
  last_quote_at: string | null;
  last_candle_at: string | null;
  age_seconds: number | null;
  dead_letters: number;
}
export interface DeadLetterCount {
  key: string | null;
  stage: string;
  reason: string;
  count: number;
  last_at: string;
}
export interface ValidationRun {
  run_id: string;
  backend: string;
  tables: string[];
  symbol: string | null;
  started_at: string;
  finished_at: string;
  success: boolean;
  batches: number;
  rows_validated: number;
  failed_checks: number;
  report_url: string | null;
}
export interface BacktestReport {
  name: string;
  modified_at: string;
  has_json: boolean;
  has_html: boolean;
  json_url: string | null;
  html_url: string | null;
}
export interface Candle {
  ts: string;
  open: string;
  high: string;
  low: string;
  close: string;
  volume: string;
  trades: number;
}
export interface SignalMark {
  strategy: string;
  account: string;
  side: string;
  strength: number;
  confidence: number;
  model_version: string | null;
  ts_event: string;
}
export interface SymbolChart {
  key: string;
  interval_seconds: number;
  source: "candles" | "trades";
  candles: Candle[];
  fills: Fill[];
  signals: SignalMark[];
}
export interface ModelScore {
  model: string;
  model_version: string;
  symbol: string;
  ts_event: string;
  n_labels: number;
  window_size: number;
  log_loss: number | null;
  roc_auc: number | null;
  accuracy: number | null;
  brier: number | null;
  rolling_log_loss: number | null;
  rolling_roc_auc: number | null;
  rolling_accuracy: number | null;
  rolling_brier: number | null;
  drift_events: number;
  last_drift_action: string | null;
  last_drift_at: string | null;
}
export interface CommandAccepted {
  kind: string;
  account: string;
  breaker: string | null;
  strategy: string | null;
  requested_by: string;
  reason: string;
  ts: string;
  topic: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function failure(response: Response): Promise<ApiError> {
  let detail = response.statusText;
  try {
    const body = (await response.json()) as { detail?: unknown };
    if (typeof body.detail === "string") detail = body.detail;
    else if (body.detail !== undefined) detail = JSON.stringify(body.detail);
  } catch {
    // the body was not JSON: the status text says enough
  }
  return new ApiError(response.status, `${response.status}: ${detail}`);
}

export async function getJson<T>(url: string, signal?: AbortSignal): Promise<T> {
  const response = await fetch(url, { signal, headers: { Accept: "application/json" } });
  if (!response.ok) throw await failure(response);
  return (await response.json()) as T;
}

/** A command: JSON body, the token in the Authorization header (never a cookie, never stored). */
export async function postCommand(path: string, token: string, body: object): Promise<CommandAccepted> {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}`, Accept: "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw await failure(response);
  return (await response.json()) as CommandAccepted;
}

export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const text = q.toString();
  return text ? `?${text}` : "";
}

export interface Resource<T> {
  data: T | undefined;
  error: string | undefined;
  loading: boolean;
  reload: () => void;
}

/** Fetch `url` (null: nothing to fetch); again whenever `url` or `version` changes. */
export function useResource<T>(url: string | null, version = 0): Resource<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string>();
  const [loading, setLoading] = useState(url !== null);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  const lastUrl = useRef(url);
  useEffect(() => {
    if (url === null) {
      setLoading(false);
      return;
    }
    if (lastUrl.current !== url) {
      setData(undefined); // another query: do not show the previous one's rows meanwhile
      lastUrl.current = url;
    }
    const controller = new AbortController();
    setLoading(true);
    getJson<T>(url, controller.signal)
      .then((value) => {
        setData(value);
        setError(undefined);
      })
      .catch((e: unknown) => {
        if (controller.signal.aborted) return;
        setError(e instanceof Error ? e.message : String(e));
      })
      .finally(() => {
        if (!controller.signal.aborted) setLoading(false);
      });
    return () => controller.abort();
  }, [url, version, tick]);
  return { data, error, loading, reload };
}
