// The health history chart: one stepped line per catalog row of the
// instance (its own row and any deployment color rows), on a status axis,
// over at least the last window seconds (wider when the history is).
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { healthSeries, levelLabels } from '../history';
import type { Transition } from '../types';
import { xRange } from './Chart';

const colours = ['#3fb950', '#4aa3ff', '#d29922', '#b48cff'];

export function StatusChart({ transitions, height = 160, window = 600 }: { transitions: Transition[]; height?: number; window?: number }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const s = healthSeries(transitions, Date.now() / 1000);
  const rowsKey = s.rows.join();
  useEffect(() => {
    const el = box.current!;
    const stepped = uPlot.paths.stepped!({ align: 1 });
    const opts: uPlot.Options = {
      width: Math.max(240, el.clientWidth),
      height,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: {
          time: true,
          range: (u) => {
            const xs = u.data[0];
            return xRange(xs.length ? xs[0] : null, xs.length ? xs[xs.length - 1] : null, Date.now() / 1000, window);
          },
        },
        y: { range: () => [-0.5, 3.5] },
      },
      axes: [
        { stroke: '#8b98a9', grid: { stroke: '#2a3441' } },
        { stroke: '#8b98a9', grid: { stroke: '#2a3441' }, size: 70, splits: () => [0, 1, 2, 3], values: (_u, ticks) => ticks.map((t) => levelLabels[t] ?? '') },
      ],
      series: [
        {},
        ...s.rows.map((name, i) => ({
          label: name,
          stroke: colours[i % colours.length],
          width: 2,
          paths: stepped,
          points: { show: true, size: 6 },
          value: (_: uPlot, v: number | null) => (v == null ? '—' : levelLabels[v] ?? String(v)),
        })),
      ],
    };
    plot.current = new uPlot(opts, s.data as uPlot.AlignedData, el);
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(240, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [rowsKey, height]);
  useEffect(() => {
    plot.current?.setData(s.data as uPlot.AlignedData);
  }, [transitions]);
  return (
    <figure class="chart" data-testid="health-chart" data-points={s.points} data-rows={s.rows.length}>
      <figcaption class="visually-hidden">Health history: status of each row of the instance over time</figcaption>
      <div ref={box} class="chart-box" />
    </figure>
  );
}
