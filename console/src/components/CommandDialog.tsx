// The kill switch and the breaker reset: token, operator, reason and a typed confirmation word.
// The token lives only in this page's memory (never stored, never in the bundle) and travels in the
// Authorization header.
import { useState, type FormEvent } from "react";
import { postCommand, type CommandAccepted } from "../api";
import { formatUtc } from "../format";

export type CommandKind = "kill" | "reset";

interface Props {
  kind: CommandKind;
  accounts: string[];
  account?: string;
  breakers?: string[];
  token: string;
  operator: string;
  onCredentials: (token: string, operator: string) => void;
  onClose: () => void;
  onSent: (accepted: CommandAccepted) => void;
}

export function CommandDialog(props: Props) {
  const { kind, accounts, onClose, onSent } = props;
  const kill = kind === "kill";
  const word = kill ? "KILL" : "RESET";
  const [account, setAccount] = useState(props.account ?? (kill ? "*" : accounts[0] ?? ""));
  const [breaker, setBreaker] = useState(props.breakers?.[0] ?? "kill_switch");
  const [reason, setReason] = useState("");
  const [operator, setOperator] = useState(props.operator);
  const [token, setToken] = useState(props.token);
  const [confirm, setConfirm] = useState("");
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<string>();
  const ready = confirm === word && reason.trim() !== "" && operator.trim() !== "" && token !== "" && account !== "";

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!ready) return;
    setSending(true);
    setError(undefined);
    try {
      const body = kill
        ? { account, reason, operator, confirm: word }
        : { account, breaker, reason, operator, confirm: word };
      const accepted = await postCommand(kill ? "/api/commands/kill" : "/api/commands/reset", token, body);
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
        <h2 id="cmd-title" className={kill ? "danger-text" : ""}>
          {kill ? "Kill switch: halt trading and cancel every open order" : "Reset a breaker"}
        </h2>
        <p className="muted">
          {kill
            ? "The command goes on control.commands.v1 (the same path as `bot4 kill`) and into the audit table. The account stays HALTED until a person resets the kill_switch breaker."
            : "Closing a breaker lets the risk engine recompute the trading state. The reason goes on the record."}
        </p>
        <label>
          Account
          <select value={account} onChange={(e) => setAccount(e.target.value)} name="account">
            {kill && <option value="*">* (every account)</option>}
            {accounts.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </label>
        {!kill && (
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
          Type <strong>{word}</strong> to confirm
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
          <button type="submit" className={kill ? "danger" : "primary"} disabled={!ready || sending}>
            {sending ? "Sending…" : kill ? "Halt and cancel all" : "Reset breaker"}
          </button>
        </div>
      </form>
    </div>
  );
}

export function CommandNotice({ accepted, onDismiss }: { accepted: CommandAccepted; onDismiss: () => void }) {
  return (
    <div className="notice" role="status" data-testid="command-notice">
      {accepted.kind === "kill_switch" ? "Kill switch" : `Reset of ${accepted.breaker}`} for{" "}
      <strong>{accepted.account}</strong> sent by {accepted.requested_by} at {formatUtc(accepted.ts)} on{" "}
      {accepted.topic}; the risk state below changes when the risk engine has acted on it.{" "}
      <button className="link" onClick={onDismiss}>
        dismiss
      </button>
    </div>
  );
}
