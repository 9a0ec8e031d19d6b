// Live updates: one EventSource on /api/events (fed from Kafka by the server). Panels re-read their
// endpoint when an event of their topic arrives; fills also show at once from the event itself.
import { createContext, useContext, useEffect, useRef, useState, type ReactNode } from "react";
import type { Fill } from "./api";

export interface LiveEvent {
  topic: string;
  type: string;
  account?: string;
  ts_event?: string;
  ts?: string;
  [field: string]: unknown;
}

export interface LiveState {
  connected: boolean;
  versions: Record<string, number>;
  recent: LiveEvent[];
  fills: Fill[];
}

const initial: LiveState = { connected: false, versions: {}, recent: [], fills: [] };
const LiveContext = createContext<LiveState>(initial);
const KEEP = 200;
const SETTLE_MS = 250;

export function LiveProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<LiveState>(initial);
  const pending = useRef<LiveEvent[]>([]);
  useEffect(() => {
    const source = new EventSource("/api/events");
    let timer: number | undefined;
    const flush = () => {
      timer = undefined;
      const batch = pending.current;
      pending.current = [];
      setState((s) => {
        const versions = { ...s.versions };
        for (const e of batch) versions[e.topic] = (versions[e.topic] ?? 0) + 1;
        const fills = batch.filter((e) => e.type === "fill").map((e) => e as unknown as Fill);
        return {
          connected: true,
          versions,
          recent: [...batch.reverse(), ...s.recent].slice(0, KEEP),
          fills: [...fills.reverse(), ...s.fills].slice(0, KEEP),
        };
      });
    };
    const onEvent = (message: MessageEvent<string>) => {
      pending.current.push(JSON.parse(message.data) as LiveEvent);
      // Fills in Kafka reach the page well under a second; a burst becomes one re-read.
      if (timer === undefined) timer = window.setTimeout(flush, SETTLE_MS);
    };
    for (const topic of ["fills.v1", "orders.v1", "risk.decisions.v1", "control.commands.v1", "resync"]) {
      source.addEventListener(topic, onEvent as EventListener);
    }
    source.onopen = () => setState((s) => ({ ...s, connected: true }));
    source.onerror = () => setState((s) => ({ ...s, connected: false }));
    return () => {
      source.close();
      if (timer !== undefined) window.clearTimeout(timer);
    };
  }, []);
  return <LiveContext.Provider value={state}>{children}</LiveContext.Provider>;
}

export function useLive(): LiveState {
  return useContext(LiveContext);
}

/** A number that changes whenever one of `topics` (or a resync) delivered events. */
export function useLiveVersion(...topics: string[]): number {
  const { versions } = useLive();
  return topics.reduce((n, t) => n + (versions[t] ?? 0), versions["resync"] ?? 0);
}
