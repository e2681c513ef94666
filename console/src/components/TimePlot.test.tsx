// @vitest-environment happy-dom
import { describe, expect, it } from 'vitest';
import { render } from 'preact';
import { act } from 'preact/test-utils';
import type uPlot from 'uplot';
import { Chart } from './Chart';
import { plotOptions } from './TimePlot';

describe('TimePlot', () => {
  it('shows the empty state instead of a plot when there are no samples', () => {
    const root = document.createElement('div');
    act(() => render(<Chart title="CPU" series={[{ label: 'CPU', colour: '#4aa3ff' }]} data={[[], []]} empty="No CPU samples yet." />, root));
    expect(root.querySelector('figcaption')?.textContent).toBe('CPU');
    expect(root.querySelector('.state-empty')?.textContent).toBe('No CPU samples yet.');
    expect(root.querySelector('.chart-box')).toBeNull();
    render(null, root);
  });

  it('gives every chart the same axes, legend and value formats', () => {
    const o = plotOptions(
      [
        { label: 'memory', colour: '#b48cff', fill: true, value: (v) => `${v} B` },
        { label: 'limit', colour: '#f85149', value: (v) => `${v} max` },
      ],
      { range: (max) => [0, max * 2], ticks: (v) => `${v} B` },
      600,
      300,
      160,
    );
    expect([o.width, o.height, o.legend?.show]).toEqual([300, 160, true]);
    const series = o.series.slice(1) as (uPlot.Series & { value: (u: unknown, v: number | null) => string })[];
    expect(series.map((s) => [s.label, s.stroke, s.fill])).toEqual([
      ['memory', '#b48cff', '#b48cff22'],
      ['limit', '#f85149', undefined],
    ]);
    expect([series[0].value(null, 5), series[0].value(null, null), series[1].value(null, 7)]).toEqual(['5 B', '—', '7 max']);
    const y = o.scales!.y.range as (u: unknown, min: number, max: number) => [number, number];
    expect(y(null, 0, 10)).toEqual([0, 20]);
    const ticks = o.axes![1].values as (u: unknown, t: number[]) => string[];
    expect(ticks(null, [0, 512])).toEqual(['0 B', '512 B']);
  });
});
