import { describe, expect, it } from "vitest";
import { addDec, cmpDec, decToString, parseDec, sumDec } from "./decimal";
import { chartTime, formatAge, formatDecimal, formatPercent, formatPnl, formatUtc, pnlSign } from "./format";

describe("decimal strings", () => {
  it("add exactly where floats do not", () => {
    expect(0.1 + 0.2).not.toBe(0.3);
    expect(decToString(addDec(parseDec("0.1"), parseDec("0.2")))).toBe("0.3");
    expect(decToString(sumDec(["61837.63", "-61837.62", "0.00000001"]))).toBe("0.01000001");
  });

  it("keep every digit of large amounts", () => {
    expect(decToString(sumDec(["12345678901234567890.123456789", "1"]))).toBe("12345678901234567891.123456789");
  });

  it("compare across scales", () => {
    expect(cmpDec(parseDec("1.50"), parseDec("1.5"))).toBe(0);
    expect(cmpDec(parseDec("-2"), parseDec("1.999"))).toBe(-1);
  });

  it("refuse what is not a decimal string", () => {
    expect(() => parseDec("1e-8")).toThrow(/not a decimal string/);
    expect(() => parseDec("NaN")).toThrow();
  });
});

describe("formatDecimal", () => {
  it("groups thousands and keeps the stored digits", () => {
    expect(formatDecimal("61837.63000000")).toBe("61,837.63000000");
    expect(formatDecimal("-1234567.5")).toBe("-1,234,567.5");
  });

  it("rounds half away from zero only for display", () => {
    expect(formatDecimal("0.125", 2)).toBe("0.13");
    expect(formatDecimal("-0.125", 2)).toBe("-0.13");
    expect(formatDecimal("2.5", 0)).toBe("3");
    expect(formatDecimal("1", 4)).toBe("1.0000");
  });

  it("shows a dash for a missing value", () => {
    expect(formatDecimal(null)).toBe("—");
  });
});

describe("PnL signs", () => {
  it("marks gains with + and losses with -", () => {
    expect(formatPnl("12.3")).toBe("+12.30");
    expect(formatPnl("-0.05")).toBe("-0.05");
    expect(pnlSign("12.3")).toBe("gain");
    expect(pnlSign("-0.05")).toBe("loss");
  });

  it("calls a loss that rounds to zero flat, and never shows -0.00", () => {
    expect(pnlSign("-0.004")).toBe("flat");
    expect(formatPnl("-0.004")).toBe("0.00");
    expect(formatPnl("0")).toBe("0.00");
  });

  it("percentages of fractions are exact", () => {
    expect(formatPercent("0.0523")).toBe("5.23%");
    expect(formatPercent("0.15")).toBe("15.00%");
  });
});

describe("times in UTC", () => {
  it("shows the API's UTC time unchanged, whatever the browser's zone", () => {
    expect(formatUtc("2024-08-08T23:54:15.342000Z")).toBe("2024-08-08 23:54:15.342 UTC");
    expect(formatUtc("2024-08-09T01:54:15+02:00", false)).toBe("2024-08-08 23:54:15 UTC");
  });

  it("refuses a time without a zone", () => {
    expect(() => formatUtc("2024-08-08T23:54:15")).toThrow(/no zone/);
  });

  it("chart times are epoch seconds", () => {
    expect(chartTime("2024-08-08T23:54:15.342Z")).toBe(1723161255);
  });

  it("ages read short", () => {
    expect(formatAge(42)).toBe("42 s");
    expect(formatAge(600)).toBe("10 min");
    expect(formatAge(72471092)).toBe("839 d");
  });
});
