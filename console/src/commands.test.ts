import { describe, expect, it } from "vitest";
import { commandBody, commandReady, COMMANDS } from "./commands";

const fields = { account: "main", reason: "fills look wrong", operator: "carol", strategy: "trend-v1", breaker: "drawdown" };

describe("operator commands", () => {
  it("send a pause and a resume with the strategy and their own confirmation word, and nothing else", () => {
    expect(commandBody("pause", fields)).toEqual({
      account: "main",
      strategy: "trend-v1",
      reason: "fills look wrong",
      operator: "carol",
      confirm: "PAUSE",
    });
    expect(commandBody("resume", fields)).toEqual({ ...commandBody("pause", fields), confirm: "RESUME" });
    expect(COMMANDS.pause.path).toBe("/api/commands/pause");
    expect(COMMANDS.resume.path).toBe("/api/commands/resume");
  });

  it("send the kill switch without a strategy or breaker, and the reset with its breaker", () => {
    expect(commandBody("kill", fields)).toEqual({ account: "main", reason: "fills look wrong", operator: "carol", confirm: "KILL" });
    expect(commandBody("reset", fields).breaker).toBe("drawdown");
    expect(commandBody("reset", fields).strategy).toBeUndefined();
  });

  it("are ready only when the word is typed and every needed field says something", () => {
    expect(commandReady("pause", fields, "tok", "PAUSE")).toBe(true);
    expect(commandReady("pause", fields, "tok", "pause")).toBe(false);
    expect(commandReady("pause", fields, "tok", "RESUME")).toBe(false);
    expect(commandReady("pause", { ...fields, strategy: "  " }, "tok", "PAUSE")).toBe(false);
    expect(commandReady("pause", { ...fields, reason: " " }, "tok", "PAUSE")).toBe(false);
    expect(commandReady("pause", fields, "", "PAUSE")).toBe(false);
    expect(commandReady("kill", { ...fields, strategy: undefined }, "tok", "KILL")).toBe(true);
  });

  it("offer every account ('*') for the kill switch, pause and resume but not for a breaker reset", () => {
    expect(commandReady("pause", { ...fields, account: "*" }, "tok", "PAUSE")).toBe(true);
    expect(commandReady("resume", { ...fields, account: "*" }, "tok", "RESUME")).toBe(true);
    expect(commandReady("kill", { ...fields, account: "*" }, "tok", "KILL")).toBe(true);
    expect(commandReady("reset", { ...fields, account: "*" }, "tok", "RESET")).toBe(false);
  });
});
