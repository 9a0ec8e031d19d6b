// The operator commands (kill switch, breaker reset, strategy pause and resume): token, operator,
// reason and a typed confirmation word. The token lives only in this page's memory (never stored,
// never in the bundle) and travels in the Authorization header.
import { useState, type FormEvent } from "react";
import { postCommand, type CommandAccepted } from "../api";
import { commandBody, commandReady, COMMANDS, type CommandKind } from "../commands";
import { formatUtc } from "../format";

export type { CommandKind } from "../commands";

interface Props {
  kind: CommandKind;
  accounts: string[];
  account?: string;
  breakers?: string[];
  strategy?: string;
  strategies?: string[];
  token: string;
  operator: string;
  onCredentials: (token: string, operator: string) => void;
  onClose: () => void;
  onSent: (accepted: CommandAccepted) => void;
}

export function CommandDialog(props: Props) {
  const { kind, accounts, onClose, onSent } = props;
  const spec = COMMANDS[kind];
  const [account, setAccount] = useState(props.account ?? (kind === "kill" ? "*" : accounts[0] ?? ""));
  const [breaker, setBreaker] = useState(props.breakers?.[0] ?? "kill_switch");
  const [strategy, setStrategy] = useState(props.strategy ?? props.strategies?.[0] ?? "");
  const [reason, setReason] = useState("");
  const [operator, setOperator] = useState(props.operator);
  const [token, setToken] = useState(props.token);
  const [confirm, setConfirm] = useState("");
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<string>();
  const fields = { account, reason, operator, breaker, strategy };
  const ready = commandReady(kind, fields, token, confirm);

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!ready) return;
    setSending(true);
    setError(undefined);
    try {
      const accepted = await postCommand(spec.path, token, commandBody(kind, fields));
      props.onCredentials(token, operator);
      onSent(accepted);
    } catch (err) {
      const text = err instanceof Error ? err.message : String(err);
      setError(text.startsWith("401") ? `Token refused (${text})` : text);
    } finally {
      setSending(false);
    }
  }

  return (
    <div className="backdrop" role="presentation">
      <form className="dialog" role="dialog" aria-modal="true" aria-labelledby="cmd-title" onSubmit={submit}>
        <h2 id="cmd-title" className={spec.danger ? "danger-text" : ""}>
          {spec.title}
        </h2>
        <p className="muted">{spec.explain}</p>
        <label>
          Account
          <select value={account} onChange={(e) => setAccount(e.target.value)} name="account">
            {spec.allowsEveryAccount && <option value="*">* (every account)</option>}
            {accounts.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </label>
        {spec.needs === "breaker" && (
          <label>
            Breaker
            <input
              name="breaker"
              list="breaker-names"
              value={breaker}
              onChange={(e) => setBreaker(e.target.value)}
            />
            <datalist id="breaker-names">
              {(props.breakers ?? ["kill_switch", "drawdown", "daily_loss"]).map((b) => (
                <option key={b} value={b} />
              ))}
            </datalist>
          </label>
        )}
        {spec.needs === "strategy" && (
          <label>
            Strategy
            <input
              name="strategy"
              list="strategy-names"
              value={strategy}
              onChange={(e) => setStrategy(e.target.value)}
              maxLength={100}
            />
            <datalist id="strategy-names">
              {(props.strategies ?? []).map((s) => (
                <option key={s} value={s} />
              ))}
            </datalist>
          </label>
        )}
        <label>
          Reason (goes on the record)
          <input name="reason" value={reason} onChange={(e) => setReason(e.target.value)} maxLength={500} />
        </label>
        <label>
          Your name
          <input name="operator" value={operator} onChange={(e) => setOperator(e.target.value)} maxLength={100} />
        </label>
        <label>
          Console token
          <input
            name="token"
            type="password"
            autoComplete="off"
            value={token}
            onChange={(e) => setToken(e.target.value)}
          />
        </label>
        <label>
          Type <strong>{spec.word}</strong> to confirm
          <input name="confirm" value={confirm} onChange={(e) => setConfirm(e.target.value)} autoComplete="off" />
        </label>
        {error && (
          <div className="error" role="alert">
            {error}
          </div>
        )}
        <div className="dialog-buttons">
          <button type="button" onClick={onClose} disabled={sending}>
            Cancel
          </button>
          <button type="submit" className={spec.danger ? "danger" : "primary"} disabled={!ready || sending}>
            {sending ? "Sending…" : spec.submit}
          </button>
        </div>
      </form>
    </div>
  );
}

export function CommandNotice({ accepted, onDismiss }: { accepted: CommandAccepted; onDismiss: () => void }) {
  return (
    <div className="notice" role="status" data-testid="command-notice">
      {noticeTitle(accepted)} for{" "}
      <strong>{accepted.account}</strong> sent by {accepted.requested_by} at {formatUtc(accepted.ts)} on{" "}
      {accepted.topic};{" "}
      {accepted.strategy
        ? "the trading flow applies it to the strategy's next signals (denials: strategy_paused)."
        : "the risk state below changes when the risk engine has acted on it."}{" "}
      <button className="link" onClick={onDismiss}>
        dismiss
      </button>
    </div>
  );
}

function noticeTitle(accepted: CommandAccepted): string {
  if (accepted.kind === "kill_switch") return "Kill switch";
  if (accepted.kind === "pause_strategy") return `Pause of ${accepted.strategy}`;
  if (accepted.kind === "resume_strategy") return `Resume of ${accepted.strategy}`;
  return `Reset of ${accepted.breaker}`;
}
