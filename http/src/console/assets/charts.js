// Small line charts drawn as SVG elements (no library, no inline markup).

const NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/**
 * A chart of `values` (oldest first) against `max` (the limit), titled
 * `label`, with the latest value written beside it by `format`.
 */
export function chart(label, values, max, format) {
  const width = 300;
  const height = 60;
  const top = Math.max(max || 0, ...values, 1);
  const figure = document.createElement('figure');
  figure.className = 'chart';
  const caption = document.createElement('figcaption');
  const latest = values.length ? format(values[values.length - 1]) : 'no data yet';
  caption.textContent = `${label}: ${latest}${max ? ` of ${format(max)}` : ''}`;
  const root = svg('svg', {viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': caption.textContent, preserveAspectRatio: 'none'});
  root.append(svg('rect', {x: 0, y: 0, width, height, class: 'chart-bg'}));
  if (values.length > 1) {
    const step = width / (values.length - 1);
    const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - (v / top) * (height - 4) - 2).toFixed(1)}`).join(' ');
    root.append(svg('polyline', {points, class: 'chart-line'}));
  }
  figure.append(caption, root);
  return figure;
}
