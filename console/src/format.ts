// How values are shown: decimal strings grouped and rounded without floats, times in UTC, PnL signs.
import { absDec, decToString, parseDec, roundDec, signDec, type Dec } from "./decimal";

function group(int: string): string {
  return int.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

function render(d: Dec, places: number | undefined, plus: boolean): string {
  const shown = places === undefined ? d : roundDec(d, places);
  const sign = signDec(shown);
  const text = decToString(absDec(shown));
  const [int, frac] = text.split(".");
  const body = group(int) + (frac !== undefined ? "." + frac : "");
  if (sign < 0) return "-" + body;
  if (sign > 0 && plus) return "+" + body;
  return body;
}

/** A decimal string for display: thousands grouped, rounded to `places` when given; "—" for null. */
export function formatDecimal(value: string | null | undefined, places?: number): string {
  if (value === null || value === undefined || value === "") return "—";
  return render(parseDec(value), places, false);
}

/** A decimal already parsed (sums) for display. */
export function formatDec(value: Dec, places?: number): string {
  return render(value, places, false);
}

export type PnlSign = "gain" | "loss" | "flat";

/** Whether a PnL is a gain, a loss or flat, after rounding to what is shown. */
export function pnlSign(value: string | Dec, places = 2): PnlSign {
  const d = typeof value === "string" ? parseDec(value) : value;
  const s = signDec(roundDec(d, places));
  return s > 0 ? "gain" : s < 0 ? "loss" : "flat";
}

/** A PnL with an explicit sign: "+12.30", "-0.05", "0.00". */
export function formatPnl(value: string | Dec, places = 2): string {
  const d = typeof value === "string" ? parseDec(value) : value;
  return render(d, places, true);
}

/** A fraction ("0.0523") as a percentage string ("5.23%"), exactly. */
export function formatPercent(fraction: string | null | undefined, places = 2): string {
  if (fraction === null || fraction === undefined || fraction === "") return "—";
  const d = parseDec(fraction);
  return render({ units: d.units * 100n, scale: d.scale }, places, false) + "%";
}

const ISO_WITH_ZONE = /(Z|[+-]\d{2}:\d{2})$/;

/** An ISO time from the API shown in UTC: "2024-08-08 23:54:15.342 UTC". A time without a zone is refused. */
export function formatUtc(iso: string | null | undefined, withMillis = true): string {
  if (iso === null || iso === undefined) return "—";
  if (!ISO_WITH_ZONE.test(iso)) throw new Error(`time ${iso} has no zone; the API sends UTC`);
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) throw new Error(`not a time: ${iso}`);
  const text = t.toISOString(); // always UTC
  const base = text.slice(0, 10) + " " + text.slice(11, withMillis ? 23 : 19);
  return base + " UTC";
}

/** Seconds as a short age: "42 s", "3 min", "5 h", "12 d". */
export function formatAge(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, seconds);
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

/** Seconds since the epoch for a chart axis (charts plot numbers; the labels stay UTC). */
export function chartTime(iso: string): number {
  return Math.floor(new Date(iso).getTime() / 1000);
}
