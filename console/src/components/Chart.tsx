// A time-series chart: one filled line per series on a value axis that
// starts at zero, over at least the last window seconds (TimePlot).
import type { ComponentChildren } from 'preact';
import { TimePlot } from './TimePlot';

export interface Series {
  label: string;
  colour: string;
  format?: (v: number) => string;
}

/** Chart draws data = [times in seconds, ...values per series]; the value
 * axis uses the first series' format. With empty set and no samples it
 * shows that text instead. */
export function Chart({ title, series, data, height = 180, window = 3600, empty }: { title: string; series: Series[]; data: number[][]; height?: number; window?: number; empty?: ComponentChildren }) {
  const format = (s: Series | undefined) => (v: number) => (s?.format ? s.format(v) : String(v));
  return (
    <TimePlot
      caption={title}
      shape={series.map((s) => s.label).join()}
      series={series.map((s) => ({ label: s.label, colour: s.colour, fill: true, value: format(s) }))}
      y={{ range: (max) => [0, max > 0 ? max * 1.15 : 1], ticks: format(series[0]) }}
      data={data}
      height={height}
      window={window}
      empty={empty}
    />
  );
}
