// A horizontal bar chart in plain SVG: one bar per label, scaled to the
// largest value (benchmark accuracy, latency, cost per model).
export interface BarDatum {
  label: string;
  value: number;
  highlight?: boolean;
}

export function Bars({ title, data, format, testid }: { title: string; data: BarDatum[]; format: (v: number) => string; testid?: string }) {
  const max = Math.max(...data.map((d) => d.value), 0) || 1;
  const row = 24;
  const labelW = 130;
  const width = 420;
  return (
    <figure class="chart bars" data-testid={testid}>
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${width} ${data.length * row + 4}`} width={width} role="img" aria-label={title}>
        {data.map((d, i) => {
          const w = Math.max(1, ((width - labelW - 80) * d.value) / max);
          return (
            <g transform={`translate(0 ${i * row + 2})`}>
              <text x={labelW - 6} y={row / 2 + 4} text-anchor="end" class="bars-label">
                {d.label.length > 17 ? d.label.slice(0, 16) + '…' : d.label}
                <title>{d.label}</title>
              </text>
              <rect x={labelW} y={3} width={w} height={row - 8} rx={3} class={d.highlight ? 'bars-fill hi' : 'bars-fill'} />
              <text x={labelW + w + 6} y={row / 2 + 4} class="bars-value">
                {format(d.value)}
              </text>
            </g>
          );
        })}
      </svg>
    </figure>
  );
}
