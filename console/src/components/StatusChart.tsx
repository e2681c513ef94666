// The health history chart: one stepped line per catalog row of the
// instance (its own row and any deployment color rows), on a status axis,
// over at least the last window seconds (wider when the history is).
import { useMemo } from 'preact/hooks';
import uPlot from 'uplot';
import { healthSeries, levelLabels } from '../history';
import type { Transition } from '../types';
import { TimePlot } from './TimePlot';

const colours = ['#3fb950', '#4aa3ff', '#d29922', '#b48cff'];
const label = (v: number) => levelLabels[v] ?? String(v);
const stepped = uPlot.paths.stepped!({ align: 1 });

export function StatusChart({ transitions, height = 160, window = 600 }: { transitions: Transition[]; height?: number; window?: number }) {
  const s = useMemo(() => healthSeries(transitions, Date.now() / 1000), [transitions]);
  return (
    <TimePlot
      caption="Health history: status of each row of the instance over time"
      captionHidden
      figure={{ 'data-testid': 'health-chart', 'data-points': s.points, 'data-rows': s.rows.length }}
      shape={s.rows.join()}
      series={s.rows.map((name, i) => ({ label: name, colour: colours[i % colours.length], paths: stepped, points: { show: true, size: 6 }, value: label }))}
      y={{ range: () => [-0.5, 3.5], splits: [0, 1, 2, 3], ticks: (t) => levelLabels[t] ?? '' }}
      data={s.data}
      height={height}
      window={window}
      empty="No status changes recorded."
    />
  );
}
