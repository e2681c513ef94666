// The console's one chart base (uPlot): a time axis over at least the last
// window seconds, a value axis, sizing that follows the chart's box, the
// legend that shows the values under the cursor, and an empty state. Chart
// (time series) and StatusChart (health history) are specialisations.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { Empty } from './ui';

/** PlotSeries is one line: its label, colour, how the legend shows a value, and optional uPlot drawing options. */
export interface PlotSeries {
  label: string;
  colour: string;
  value: (v: number) => string;
  fill?: boolean;
  paths?: uPlot.Series.PathBuilder;
  points?: uPlot.Series.Points;
}

/** ValueAxis is the value (y) scale: its range, tick labels and optional fixed ticks. */
export interface ValueAxis {
  range: (max: number) => [number, number];
  ticks: (v: number) => string;
  splits?: number[];
}

const axisColour = '#8b98a9';
const gridColour = '#2a3441';
const minWidth = 240;

/** TimePlot draws data = [times in seconds, ...values per series]; with
 * empty set and no points it shows that text instead. shape names what
 * changes the plot's layout (the series): a new shape rebuilds it, new data
 * only redraws. */
export function TimePlot(props: {
  series: PlotSeries[];
  data: (number | null)[][];
  y: ValueAxis;
  shape: string;
  height: number;
  window: number;
  empty?: ComponentChildren;
  caption: ComponentChildren;
  captionHidden?: boolean;
  figure?: Record<string, string | number>;
}) {
  const { series, data, y, shape, height, window, empty } = props;
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const isEmpty = empty !== undefined && (data[0]?.length ?? 0) === 0;
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    plot.current = new uPlot(plotOptions(series, y, window, Math.max(minWidth, el.clientWidth), height), data as uPlot.AlignedData, el);
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(minWidth, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [shape, height, isEmpty]);
  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData);
  }, [data]);
  return (
    <figure class="chart" {...props.figure}>
      <figcaption class={props.captionHidden ? 'visually-hidden' : undefined}>{props.caption}</figcaption>
      {isEmpty ? <Empty>{empty}</Empty> : <div ref={box} class="chart-box" />}
    </figure>
  );
}

/** plotOptions is the uPlot configuration every chart shares, for these series and value axis. */
export function plotOptions(series: PlotSeries[], y: ValueAxis, window: number, width: number, height: number): uPlot.Options {
  return {
    width,
    height,
    legend: { show: true },
    cursor: { drag: { x: false, y: false } },
    scales: {
      // At least the last window, so a few samples do not stretch the axis over years.
      // (From the data itself: for a single point uPlot pads the max by years.)
      x: {
        time: true,
        range: (u) => {
          const xs = u.data[0];
          return xRange(xs.length ? xs[0] : null, xs.length ? xs[xs.length - 1] : null, Date.now() / 1000, window);
        },
      },
      y: { range: (_u, _min, max) => y.range(max) },
    },
    axes: [
      { stroke: axisColour, grid: { stroke: gridColour } },
      {
        stroke: axisColour,
        grid: { stroke: gridColour },
        size: 70,
        ...(y.splits ? { splits: () => y.splits! } : {}),
        values: (_u, ticks) => ticks.map(y.ticks),
      },
    ],
    series: [
      {},
      ...series.map((s) => ({
        label: s.label,
        stroke: s.colour,
        width: 2,
        ...(s.fill ? { fill: s.colour + '22' } : {}),
        ...(s.paths ? { paths: s.paths } : {}),
        ...(s.points ? { points: s.points } : {}),
        value: (_: uPlot, v: number | null) => (v == null ? '—' : s.value(v)),
      })),
    ],
  };
}

/** xRange is the time axis: at least window seconds up to now, wider if the data is. */
export function xRange(min: number | null, max: number | null, now: number, window: number): [number, number] {
  const hi = Math.max(max ?? now, now);
  const lo = Math.min(min ?? hi - window, hi - window);
  return [lo, hi];
}
