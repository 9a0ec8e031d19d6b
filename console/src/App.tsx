import { useEffect, useState } from "react";
import { useResource, type Account, type CommandAccepted, type Info, type RiskState } from "./api";
import { CommandDialog, CommandNotice, type CommandKind } from "./components/CommandDialog";
import { StateBadge } from "./components/Panel";
import { useLive, useLiveVersion } from "./live";
import { ReportsPage, SymbolPage, ValidationPage } from "./pages/Data";
import { Overview } from "./pages/Overview";
import { DecisionsPage, FillsPage, OrdersPage } from "./pages/Trading";

const PAGES = ["overview", "symbol", "orders", "fills", "decisions", "reports", "quality"] as const;
const LABELS: Partial<Record<Page, string>> = { quality: "models & quality" };
type Page = (typeof PAGES)[number];

function pageFromHash(): Page {
  const name = window.location.hash.replace(/^#\/?/, "");
  return (PAGES as readonly string[]).includes(name) ? (name as Page) : "overview";
}

interface OpenCommand {
  kind: CommandKind;
  account?: string;
  breakers?: string[];
  strategy?: string;
  strategies?: string[];
}

export function App() {
  const [page, setPage] = useState<Page>(pageFromHash);
  useEffect(() => {
    const onHash = () => setPage(pageFromHash());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  const info = useResource<Info>("/api/info");
  const riskVersion = useLiveVersion("risk.decisions.v1", "control.commands.v1", "fills.v1");
  const accounts = useResource<Account[]>("/api/accounts", riskVersion);
  const risk = useResource<RiskState[]>("/api/risk", riskVersion);
  const live = useLive();
  const [command, setCommand] = useState<OpenCommand>();
  const [accepted, setAccepted] = useState<CommandAccepted>();
  const [credentials, setCredentials] = useState({ token: "", operator: "" });
  const names = (accounts.data ?? []).map((a) => a.account);
  const commandsEnabled = info.data?.commands_enabled ?? false;
  const worst = (risk.data ?? []).map((r) => r.trading_state).sort((a, b) => rank(b) - rank(a))[0] ?? null;

  return (
    <div className="app">
      <header className="top">
        <h1>Bot4</h1>
        <span className="muted">{info.data ? `${info.data.mode} mode` : info.error ? "API unreachable" : "…"}</span>
        <span data-testid="overall-state" title="most severe trading state over all accounts">
          <StateBadge state={worst} />
        </span>
        <span className={live.connected ? "ok" : "warn"} title="server-sent events from Kafka">
          {live.connected ? "● live" : "○ not live"}
        </span>
        <nav>
          {PAGES.map((p) => (
            <a key={p} href={`#/${p}`} className={p === page ? "active" : ""}>
              {LABELS[p] ?? p}
            </a>
          ))}
        </nav>
        <button
          className="danger kill"
          data-testid="kill-button"
          disabled={!commandsEnabled}
          title={commandsEnabled ? "Halt trading and cancel every open order" : "Commands are disabled: no token configured or read-only"}
          onClick={() => setCommand({ kind: "kill" })}
        >
          KILL SWITCH
        </button>
      </header>
      {info.data && !info.data.commands_enabled && (
        <div className="notice muted">Read-only console: {info.data.token_configured ? "read_only is set" : "no BOT4_CONSOLE__TOKEN configured"}; commands are refused.</div>
      )}
      {info.error && <div className="error">The console API did not answer: {info.error}</div>}
      {accepted && <CommandNotice accepted={accepted} onDismiss={() => setAccepted(undefined)} />}
      <main>
        {page === "overview" && (
          <Overview
            accounts={accounts.data ?? []}
            commandsEnabled={commandsEnabled}
            onReset={(account, breakers) => setCommand({ kind: "reset", account, breakers })}
            onStrategy={(kind, account, strategy, strategies) => setCommand({ kind, account, strategy, strategies })}
          />
        )}
        {page === "symbol" && <SymbolPage />}
        {page === "orders" && <OrdersPage accounts={names} />}
        {page === "fills" && <FillsPage accounts={names} />}
        {page === "decisions" && <DecisionsPage accounts={names} />}
        {page === "reports" && <ReportsPage />}
        {page === "quality" && <ValidationPage />}
      </main>
      {info.data && info.data.absent.length > 0 && (
        <footer className="muted">
          Not shown yet: {info.data.absent.join("; ")}.
        </footer>
      )}
      {command && (
        <CommandDialog
          kind={command.kind}
          accounts={names}
          account={command.account}
          breakers={command.breakers}
          strategy={command.strategy}
          strategies={command.strategies}
          token={credentials.token}
          operator={credentials.operator}
          onCredentials={(token, operator) => setCredentials({ token, operator })}
          onClose={() => setCommand(undefined)}
          onSent={(a) => {
            setAccepted(a);
            setCommand(undefined);
            risk.reload();
          }}
        />
      )}
    </div>
  );
}

function rank(state: string | null): number {
  return state === "halted" ? 3 : state === "reducing" ? 2 : state === "active" ? 1 : 0;
}
