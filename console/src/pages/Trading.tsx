// Orders, fills and risk decisions: filterable tables, newest first.
import { useState } from "react";
import { query, useResource, type CommandRecord, type Decision, type Fill, type Order, type OrderDetail } from "../api";
import { Panel } from "../components/Panel";
import { formatDecimal, formatUtc } from "../format";
import { useLive, useLiveVersion } from "../live";

interface Filter {
  name: string;
  label: string;
  options?: string[];
}

function Filters({ fields, values, onChange }: { fields: Filter[]; values: Record<string, string>; onChange: (v: Record<string, string>) => void }) {
  return (
    <form className="filters" onSubmit={(e) => e.preventDefault()}>
      {fields.map((f) => (
        <label key={f.name}>
          {f.label}
          {f.options ? (
            <select name={f.name} value={values[f.name] ?? ""} onChange={(e) => onChange({ ...values, [f.name]: e.target.value })}>
              <option value="">any</option>
              {f.options.map((o) => (
                <option key={o}>{o}</option>
              ))}
            </select>
          ) : (
            <input name={f.name} value={values[f.name] ?? ""} onChange={(e) => onChange({ ...values, [f.name]: e.target.value })} />
          )}
        </label>
      ))}
    </form>
  );
}

const ORDER_STATUSES = ["pending_submit", "submitted", "accepted", "partially_filled", "filled", "pending_cancel", "canceled", "rejected", "expired"];

export function OrdersPage({ accounts }: { accounts: string[] }) {
  const [filters, setFilters] = useState<Record<string, string>>({});
  const version = useLiveVersion("fills.v1", "orders.v1");
  const orders = useResource<Order[]>(`/api/orders${query({ ...filters, limit: 500 })}`, version);
  const [open, setOpen] = useState<string>();
  return (
    <div className="grid">
      <Panel
        title="Orders"
        resource={orders}
        testId="orders-panel"
        actions={
          <Filters
            fields={[
              { name: "account", label: "Account", options: accounts },
              { name: "symbol", label: "Symbol" },
              { name: "status", label: "Status", options: ORDER_STATUSES },
              { name: "side", label: "Side", options: ["buy", "sell"] },
            ]}
            values={filters}
            onChange={setFilters}
          />
        }
        empty={(d) => (d.length ? null : "No orders match.")}
      >
        {(rows) => (
          <table>
            <thead>
              <tr>
                <th>Created</th>
                <th>Client order id</th>
                <th>Account</th>
                <th>Instrument</th>
                <th>Side</th>
                <th>Type</th>
                <th className="num">Amount</th>
                <th className="num">Filled</th>
                <th className="num">Limit</th>
                <th>Status</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((o) => (
                <tr key={o.client_order_id} className="clickable" onClick={() => setOpen(o.client_order_id)}>
                  <td>{formatUtc(o.ts_created)}</td>
                  <td>
                    <code>{o.client_order_id}</code>
                  </td>
                  <td>{o.account}</td>
                  <td>
                    {o.exchange}:{o.symbol}
                  </td>
                  <td className={o.side}>{o.side}</td>
                  <td>{o.order_type}</td>
                  <td className="num">{formatDecimal(o.amount)}</td>
                  <td className="num">{formatDecimal(o.filled)}</td>
                  <td className="num">{formatDecimal(o.limit_price)}</td>
                  <td>{o.status}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Panel>
      {open && <OrderHistory id={open} version={version} onClose={() => setOpen(undefined)} />}
    </div>
  );
}

function OrderHistory({ id, version, onClose }: { id: string; version: number; onClose: () => void }) {
  const detail = useResource<OrderDetail>(`/api/orders/${encodeURIComponent(id)}`, version);
  return (
    <Panel title={`Order ${id}: state history`} resource={detail} testId="order-history" actions={<button onClick={onClose}>close</button>}>
      {(d) => (
        <>
          <table>
            <thead>
              <tr>
                <th>#</th>
                <th>Time</th>
                <th>Event</th>
                <th>From</th>
                <th>To</th>
                <th>Detail</th>
              </tr>
            </thead>
            <tbody>
              {d.events.map((e) => (
                <tr key={e.seq}>
                  <td>{e.seq}</td>
                  <td>{formatUtc(e.ts_event)}</td>
                  <td>{e.event}</td>
                  <td>{e.status_before}</td>
                  <td>{e.status_after}</td>
                  <td className="muted">{String(e.detail.reason ?? "")}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <FillsTable rows={d.fills} />
        </>
      )}
    </Panel>
  );
}

export function FillsTable({ rows }: { rows: Fill[] }) {
  if (rows.length === 0) return <div className="empty">No fills.</div>;
  return (
    <table>
      <thead>
        <tr>
          <th>Time</th>
          <th>Fill id</th>
          <th>Order</th>
          <th>Account</th>
          <th>Instrument</th>
          <th>Side</th>
          <th className="num">Price</th>
          <th className="num">Amount</th>
          <th className="num">Notional</th>
          <th className="num">Fee</th>
          <th>Liquidity</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((f) => (
          <tr key={`${f.exchange}:${f.fill_id}`} data-testid="fill-row">
            <td>{formatUtc(f.ts_event)}</td>
            <td>
              <code>{f.fill_id}</code>
            </td>
            <td>
              <code>{f.client_order_id}</code>
            </td>
            <td>{f.account}</td>
            <td>
              {f.exchange}:{f.symbol}
            </td>
            <td className={f.side}>{f.side}</td>
            <td className="num">{formatDecimal(f.price)}</td>
            <td className="num">{formatDecimal(f.amount)}</td>
            <td className="num">{formatDecimal(f.notional, 2)}</td>
            <td className="num">
              {formatDecimal(f.fee)} {f.fee_currency ?? ""}
            </td>
            <td>{f.liquidity ?? "—"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function FillsPage({ accounts }: { accounts: string[] }) {
  const [filters, setFilters] = useState<Record<string, string>>({});
  const version = useLiveVersion("fills.v1");
  const fills = useResource<Fill[]>(`/api/fills${query({ ...filters, limit: 500 })}`, version);
  const live = useLive();
  const matches = (f: Fill) =>
    (!filters.account || f.account === filters.account) && (!filters.symbol || f.symbol === filters.symbol) && (!filters.side || f.side === filters.side);
  return (
    <Panel
      title="Fills"
      resource={fills}
      testId="fills-panel"
      actions={
        <Filters
          fields={[
            { name: "account", label: "Account", options: accounts },
            { name: "symbol", label: "Symbol" },
            { name: "side", label: "Side", options: ["buy", "sell"] },
          ]}
          values={filters}
          onChange={setFilters}
        />
      }
    >
      {(rows) => {
        // Fills that arrived on fills.v1 show at once, before the database read catches up.
        const seen = new Set(rows.map((f) => `${f.exchange}:${f.fill_id}`));
        const fresh = live.fills.filter((f) => matches(f) && !seen.has(`${f.exchange}:${f.fill_id}`));
        const all = [...fresh, ...rows].sort((a, b) => (a.ts_event < b.ts_event ? 1 : a.ts_event > b.ts_event ? -1 : 0));
        return <FillsTable rows={all} />;
      }}
    </Panel>
  );
}

const DECISION_KINDS = ["approved", "denied", "state_changed", "cancel_all"];

export function DecisionsPage({ accounts }: { accounts: string[] }) {
  const [filters, setFilters] = useState<Record<string, string>>({});
  const version = useLiveVersion("risk.decisions.v1", "control.commands.v1");
  const decisions = useResource<Decision[]>(`/api/decisions${query({ ...filters, limit: 500 })}`, version);
  const commands = useResource<CommandRecord[]>("/api/commands", version);
  return (
    <div className="grid">
      <Panel
        title="Risk decisions"
        resource={decisions}
        testId="decisions-panel"
        actions={
          <Filters
            fields={[
              { name: "account", label: "Account", options: accounts },
              { name: "kind", label: "Kind", options: DECISION_KINDS },
              { name: "reason", label: "Denial reason" },
            ]}
            values={filters}
            onChange={setFilters}
          />
        }
        empty={(d) => (d.length ? null : "No decisions match.")}
      >
        {(rows) => (
          <table>
            <thead>
              <tr>
                <th>Time</th>
                <th>Account</th>
                <th>Kind</th>
                <th>State</th>
                <th>Order</th>
                <th>Reasons</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((d) => (
                <tr key={`${d.decision_id}:${d.ts_event}`} className={d.kind === "denied" ? "denied" : ""}>
                  <td>{formatUtc(d.ts_event)}</td>
                  <td>{d.account}</td>
                  <td>{d.kind}</td>
                  <td>{d.trading_state}</td>
                  <td>{d.client_order_id ? <code>{d.client_order_id}</code> : "—"}</td>
                  <td>
                    {d.reasons.length > 0
                      ? d.reasons.map((r) => (
                          <div key={r.code}>
                            <strong>{r.code}</strong>: {r.message}
                          </div>
                        ))
                      : String(d.detail.reason ?? "—")}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Panel>
      <Panel title="Operator commands (audit)" resource={commands} testId="commands-panel" empty={(d) => (d.length ? null : "No command sent yet.")}>
        {(rows) => (
          <table>
            <thead>
              <tr>
                <th>Time</th>
                <th>Command</th>
                <th>Account</th>
                <th>Who</th>
                <th>Why</th>
                <th>Via</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((c) => (
                <tr key={c.id}>
                  <td>{formatUtc(c.ts)}</td>
                  <td>
                    {c.kind}
                    {c.breaker ? ` (${c.breaker})` : ""}
                    {c.strategy ? ` (${c.strategy})` : ""}
                  </td>
                  <td>{c.account}</td>
                  <td>{c.requested_by}</td>
                  <td>{c.reason}</td>
                  <td>{c.via}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Panel>
    </div>
  );
}
