// Charts with lightweight-charts. Prices become numbers only as plot coordinates; every label and
// table next to a chart shows the decimal strings themselves.
import {
  CandlestickSeries,
  ColorType,
  createChart,
  createSeriesMarkers,
  LineSeries,
  type IChartApi,
  type SeriesMarker,
  type Time,
  type UTCTimestamp,
} from "lightweight-charts";
import { useEffect, useRef } from "react";
import type { Candle, EquityPoint, Fill, SignalMark } from "../api";
import { chartTime } from "../format";

const base = {
  layout: { background: { type: ColorType.Solid, color: "#ffffff" }, textColor: "#1f2933" },
  grid: { vertLines: { color: "#eef1f4" }, horzLines: { color: "#eef1f4" } },
  timeScale: { timeVisible: true, secondsVisible: true },
  localization: { timeFormatter: (t: number) => new Date(t * 1000).toISOString().slice(0, 19).replace("T", " ") + " UTC" },
  autoSize: true,
};

function useChart(build: (chart: IChartApi) => void, deps: unknown[]) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const chart = createChart(el.current, base);
    build(chart);
    chart.timeScale().fitContent();
    return () => chart.remove();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  return el;
}

/** Equity (and peak) over time; one point per time (the chart needs strictly increasing times). */
export function EquityChart({ points }: { points: EquityPoint[] }) {
  const el = useChart(
    (chart) => {
      const equity = chart.addSeries(LineSeries, { color: "#1f6feb", lineWidth: 2, title: "equity" });
      const peak = chart.addSeries(LineSeries, { color: "#9aa5b1", lineWidth: 1, lineStyle: 2, title: "peak" });
      const byTime = new Map<number, EquityPoint>();
      for (const p of points) byTime.set(chartTime(p.ts_event), p);
      const rows = [...byTime.entries()].sort((a, b) => a[0] - b[0]);
      equity.setData(rows.map(([t, p]) => ({ time: t as UTCTimestamp, value: Number(p.equity) })));
      peak.setData(rows.map(([t, p]) => ({ time: t as UTCTimestamp, value: Number(p.peak_equity) })));
    },
    [points],
  );
  return <div className="chart" ref={el} data-testid="equity-chart" />;
}

/** Candles with our fills (arrows: buys below, sells above) and the strategies' signals (dots) marked. */
export function CandleChart({
  candles,
  fills,
  signals,
  interval,
}: {
  candles: Candle[];
  fills: Fill[];
  signals: SignalMark[];
  interval: number;
}) {
  const el = useChart(
    (chart) => {
      const series = chart.addSeries(CandlestickSeries, {
        upColor: "#1a7f37",
        downColor: "#cf222e",
        wickUpColor: "#1a7f37",
        wickDownColor: "#cf222e",
        borderVisible: false,
      });
      series.setData(
        candles.map((c) => ({
          time: chartTime(c.ts) as UTCTimestamp,
          open: Number(c.open),
          high: Number(c.high),
          low: Number(c.low),
          close: Number(c.close),
        })),
      );
      const fillMarks: SeriesMarker<Time>[] = fills.map((f) => {
          const t = chartTime(f.ts_event);
          const bar = t - (t % interval);
          const buy = f.side === "buy";
          return {
            time: bar as UTCTimestamp,
            position: buy ? ("belowBar" as const) : ("aboveBar" as const),
            color: buy ? "#1a7f37" : "#cf222e",
            shape: buy ? ("arrowUp" as const) : ("arrowDown" as const),
            text: `${f.side} ${f.amount} @ ${f.price}`,
          };
        });
      const signalMarks: SeriesMarker<Time>[] = signals.map((sig) => {
            const t = chartTime(sig.ts_event);
            const buy = sig.side === "buy";
            return {
              time: (t - (t % interval)) as UTCTimestamp,
              position: buy ? ("belowBar" as const) : ("aboveBar" as const),
              color: "#8250df",
              shape: "circle" as const,
              text: `${sig.strategy} ${sig.side}`,
            };
          });
      const markers = [...fillMarks, ...signalMarks].sort((a, b) => (a.time as number) - (b.time as number));
      createSeriesMarkers(series, markers);
    },
    [candles, fills, signals, interval],
  );
  return <div className="chart tall" ref={el} data-testid="candle-chart" />;
}
