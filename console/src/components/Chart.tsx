// A time-series chart (uPlot) that resizes with its box.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series {
  label: string;
  colour: string;
  format?: (v: number) => string;
}

/** Chart draws data = [times in seconds, ...values per series]. */
export function Chart({ title, series, data, height = 180, window = 3600 }: { title: string; series: Series[]; data: number[][]; height?: number; window?: number }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    const el = box.current!;
    const width = Math.max(240, el.clientWidth);
    const opts: uPlot.Options = {
      width,
      height,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        // At least the last hour, so a few samples do not stretch the axis over years.
        // (From the data itself: for a single point uPlot pads the max by years.)
        x: {
          time: true,
          range: (u) => {
            const xs = u.data[0];
            return xRange(xs.length ? xs[0] : null, xs.length ? xs[xs.length - 1] : null, Date.now() / 1000, window);
          },
        },
        y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] },
      },
      axes: [{ stroke: '#8b98a9', grid: { stroke: '#2a3441' } }, ...series.map((s) => ({
        stroke: '#8b98a9',
        grid: { stroke: '#2a3441' },
        size: 70,
        values: (_: uPlot, ticks: number[]) => ticks.map((t) => (s.format ? s.format(t) : String(t))),
      }))].slice(0, 2),
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.colour, width: 2, fill: s.colour + '22', value: (_: uPlot, v: number | null) => (v == null ? '—' : s.format ? s.format(v) : String(v)) }))],
    };
    plot.current = new uPlot(opts, data as uPlot.AlignedData, el);
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(240, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [series.map((s) => s.label).join(), height]);
  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData);
  }, [data]);
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} class="chart-box" />
    </figure>
  );
}

/** xRange is the time axis: at least window seconds up to now, wider if the data is. */
export function xRange(min: number | null, max: number | null, now: number, window: number): [number, number] {
  const hi = Math.max(max ?? now, now);
  const lo = Math.min(min ?? hi - window, hi - window);
  return [lo, hi];
}
