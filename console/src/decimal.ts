// Exact decimal arithmetic on the API's decimal strings (BigInt scaled integers), so sums of money
// are never rounded through a JavaScript float.

export interface Dec {
  readonly units: bigint; // value * 10^scale
  readonly scale: number;
}

const DECIMAL = /^([+-])?(\d+)(?:\.(\d+))?$/;

export function parseDec(text: string): Dec {
  const m = DECIMAL.exec(text.trim());
  if (!m) throw new Error(`not a decimal string: ${JSON.stringify(text)}`);
  const frac = m[3] ?? "";
  const units = BigInt(m[2] + frac) * (m[1] === "-" ? -1n : 1n);
  return { units, scale: frac.length };
}

function rescale(d: Dec, scale: number): bigint {
  return d.units * 10n ** BigInt(scale - d.scale);
}

export function addDec(a: Dec, b: Dec): Dec {
  const scale = Math.max(a.scale, b.scale);
  return { units: rescale(a, scale) + rescale(b, scale), scale };
}

export function negDec(a: Dec): Dec {
  return { units: -a.units, scale: a.scale };
}

export function absDec(a: Dec): Dec {
  return a.units < 0n ? negDec(a) : a;
}

export function cmpDec(a: Dec, b: Dec): number {
  const scale = Math.max(a.scale, b.scale);
  const x = rescale(a, scale);
  const y = rescale(b, scale);
  return x < y ? -1 : x > y ? 1 : 0;
}

export function signDec(a: Dec): -1 | 0 | 1 {
  return a.units < 0n ? -1 : a.units > 0n ? 1 : 0;
}

/** Sum of decimal strings, exact. `sumDec([])` is zero. */
export function sumDec(values: readonly string[]): Dec {
  return values.reduce<Dec>((acc, v) => addDec(acc, parseDec(v)), { units: 0n, scale: 0 });
}

/** Round half away from zero to `places` decimals (display only). */
export function roundDec(a: Dec, places: number): Dec {
  if (a.scale <= places) return { units: rescale(a, places), scale: places };
  const drop = 10n ** BigInt(a.scale - places);
  const neg = a.units < 0n;
  const abs = neg ? -a.units : a.units;
  let q = abs / drop;
  if ((abs % drop) * 2n >= drop) q += 1n;
  return { units: neg ? -q : q, scale: places };
}

/** The plain string form: digits, an optional point, no exponent. */
export function decToString(a: Dec): string {
  const neg = a.units < 0n;
  const digits = (neg ? -a.units : a.units).toString().padStart(a.scale + 1, "0");
  const int = digits.slice(0, digits.length - a.scale);
  const frac = a.scale > 0 ? "." + digits.slice(digits.length - a.scale) : "";
  return (neg && a.units !== 0n ? "-" : "") + int + frac;
}
