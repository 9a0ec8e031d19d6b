// What each operator command is in the UI: its endpoint, confirmation word, the body it sends and the
// words the dialog uses. Kept apart from the dialog so that the request shapes are unit-tested
// against what the API accepts (flows/console/schema.py: KillRequest, ResetRequest, PauseRequest,
// ResumeRequest).

export type CommandKind = "kill" | "reset" | "pause" | "resume";

export interface CommandFields {
  account: string;
  reason: string;
  operator: string;
  breaker?: string;
  strategy?: string;
}

export interface CommandSpec {
  path: string;
  word: string;
  title: string;
  explain: string;
  submit: string;
  danger: boolean;
  /** The dialog offers '*' (every account) as the account. */
  allowsEveryAccount: boolean;
  needs: "breaker" | "strategy" | null;
}

export const COMMANDS: Record<CommandKind, CommandSpec> = {
  kill: {
    path: "/api/commands/kill",
    word: "KILL",
    title: "Kill switch: halt trading and cancel every open order",
    explain:
      "The command goes on control.commands.v1 (the same path as `bot4 kill`) and into the audit table. The account stays HALTED until a person resets the kill_switch breaker.",
    submit: "Halt and cancel all",
    danger: true,
    allowsEveryAccount: true,
    needs: null,
  },
  reset: {
    path: "/api/commands/reset",
    word: "RESET",
    title: "Reset a breaker",
    explain: "Closing a breaker lets the risk engine recompute the trading state. The reason goes on the record.",
    submit: "Reset breaker",
    danger: false,
    allowsEveryAccount: false,
    needs: "breaker",
  },
  pause: {
    path: "/api/commands/pause",
    word: "PAUSE",
    title: "Pause a strategy",
    explain:
      "The strategy's entries (buy signals) are denied (strategy_paused) until it is resumed; its exits still go to the risk gate, and its open orders, the positions and the account's other strategies are not touched. Same path as `bot4 pause`.",
    submit: "Pause strategy",
    danger: false,
    allowsEveryAccount: true,
    needs: "strategy",
  },
  resume: {
    path: "/api/commands/resume",
    word: "RESUME",
    title: "Resume a strategy",
    explain: "The strategy's signals go to the risk gate again. The reason goes on the record (same path as `bot4 resume`).",
    submit: "Resume strategy",
    danger: false,
    allowsEveryAccount: true,
    needs: "strategy",
  },
};

/** Whether the dialog may send: every field the command needs says something, and the word is typed. */
export function commandReady(kind: CommandKind, fields: CommandFields, token: string, confirm: string): boolean {
  const spec = COMMANDS[kind];
  const filled = (v: string | undefined) => v !== undefined && v.trim() !== "";
  if (!filled(fields.account) || !filled(fields.reason) || !filled(fields.operator) || token === "") return false;
  if (fields.account.trim() === "*" && !spec.allowsEveryAccount) return false;
  if (spec.needs !== null && !filled(fields[spec.needs])) return false;
  return confirm === spec.word;
}

/** The JSON body the API expects for ``kind`` (only the fields its request model declares). */
export function commandBody(kind: CommandKind, fields: CommandFields): Record<string, string> {
  const spec = COMMANDS[kind];
  const body: Record<string, string> = {
    account: fields.account,
    reason: fields.reason,
    operator: fields.operator,
    confirm: spec.word,
  };
  if (spec.needs !== null) body[spec.needs] = fields[spec.needs] ?? "";
  return body;
}
