import type { ReactNode } from "react";
import type { Resource } from "../api";

interface PanelProps<T> {
  title: string;
  resource: Resource<T>;
  children: (data: T) => ReactNode;
  actions?: ReactNode;
  testId?: string;
  empty?: (data: T) => string | null;
}

/** A titled box with its own loading and error state; children render only once data is there. */
export function Panel<T>({ title, resource, children, actions, testId, empty }: PanelProps<T>) {
  const { data, error, loading, reload } = resource;
  const emptyText = data !== undefined && empty ? empty(data) : null;
  return (
    <section className="panel" data-testid={testId}>
      <header>
        <h2>{title}</h2>
        <div className="panel-actions">
          {loading && data !== undefined && <span className="muted">refreshing…</span>}
          {actions}
          <button className="link" onClick={reload} title="Reload">
            ↻
          </button>
        </div>
      </header>
      {error && (
        <div className="error" role="alert">
          Could not load {title.toLowerCase()}: {error}{" "}
          <button className="link" onClick={reload}>
            retry
          </button>
        </div>
      )}
      {data === undefined && loading && !error && <div className="loading">Loading {title.toLowerCase()}…</div>}
      {data !== undefined && (emptyText ? <div className="empty">{emptyText}</div> : children(data))}
    </section>
  );
}

export function StateBadge({ state }: { state: string | null }) {
  const label = state ? state.toUpperCase() : "UNKNOWN";
  return <span className={`badge state-${state ?? "unknown"}`}>{label}</span>;
}
