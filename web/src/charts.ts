// Hand-drawn SVG charts. Each is decorative for assistive technology (role img with a
// summary); the numbers are always given beside it as a table.

import { h, svg, uid } from "./dom";

export interface Bar {
  label: string;
  value: number;
}

const WIDTH = 320;

function niceMax(value: number): number {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * magnitude) return step * magnitude;
  }
  return 10 * magnitude;
}

function summary(title: string, bars: Bar[], format: (v: number) => string): string {
  if (bars.length === 0) return `${title}: no data`;
  const top = bars.reduce((a, b) => (b.value > a.value ? b : a));
  return `${title}: ${bars.length} bars, highest ${top.label} at ${format(top.value)}`;
}

/** Vertical bars in order, for a series over days. */
export function columnChart(title: string, bars: Bar[], format: (v: number) => string): HTMLElement {
  const height = 150;
  const left = 50;
  const bottom = 22;
  const top = 8;
  const plotWidth = WIDTH - left - 4;
  const plotHeight = height - top - bottom;
  const max = niceMax(Math.max(0, ...bars.map((b) => b.value)));
  const slot = bars.length > 0 ? plotWidth / bars.length : plotWidth;
  const barWidth = Math.max(1, slot * 0.75);
  // Label at most about eight days so that the dates stay legible.
  const labelEvery = Math.max(1, Math.ceil(bars.length / 8));
  const titleId = uid("chart");
  const chart = svg(
    "svg",
    { viewBox: `0 0 ${WIDTH} ${height}`, role: "img", "aria-labelledby": titleId, class: "chart-svg" },
    svg("title", { id: titleId }, summary(title, bars, format)),
    [0, 0.5, 1].map((f) => {
      const y = top + plotHeight * (1 - f);
      return svg(
        "g",
        { class: "chart-grid" },
        svg("line", { x1: left, x2: WIDTH - 2, y1: y, y2: y }),
        svg("text", { x: left - 4, y: y + 3, "text-anchor": "end" }, axisLabel(max * f, format)),
      );
    }),
    bars.map((bar, i) => {
      const barHeight = (Math.max(0, bar.value) / max) * plotHeight;
      const x = left + i * slot + (slot - barWidth) / 2;
      return svg(
        "g",
        { class: "chart-bar" },
        svg(
          "rect",
          { x, y: top + plotHeight - barHeight, width: barWidth, height: Math.max(barHeight, 0) },
          svg("title", {}, `${bar.label}: ${format(bar.value)}`),
        ),
        i % labelEvery === 0
          ? svg(
              "text",
              { x: x + barWidth / 2, y: height - 6, "text-anchor": "middle", class: "chart-label" },
              shortLabel(bar.label),
            )
          : null,
      );
    }),
  );
  return h("figure", { class: "chart" }, h("figcaption", {}, title), chart);
}

/** Axis labels stay short: at most two significant digits. */
function axisLabel(value: number, format: (v: number) => string): string {
  const text = format(value);
  if (text.length <= 7) return text;
  const short = Number(value.toPrecision(2));
  return text.startsWith("$") ? `$${short}` : String(short);
}

function shortLabel(label: string): string {
  // YYYY-MM-DD → MM-DD.
  return /^\d{4}-\d{2}-\d{2}$/.test(label) ? label.slice(5) : label;
}

/** Horizontal bars, one row per item, for a breakdown such as by model. */
export function barChart(title: string, bars: Bar[], format: (v: number) => string): HTMLElement {
  const row = 26;
  const height = Math.max(1, bars.length) * row + 4;
  const max = niceMax(Math.max(0, ...bars.map((b) => b.value)));
  const titleId = uid("chart");
  const valueSpace = 70;
  const chart = svg(
    "svg",
    { viewBox: `0 0 ${WIDTH} ${height}`, role: "img", "aria-labelledby": titleId, class: "chart-svg" },
    svg("title", { id: titleId }, summary(title, bars, format)),
    bars.map((bar, i) => {
      const y = i * row + 2;
      const width = (Math.max(0, bar.value) / max) * (WIDTH - valueSpace);
      return svg(
        "g",
        { class: "chart-bar" },
        svg("text", { x: 0, y: y + 9, class: "chart-label" }, truncate(bar.label, 48)),
        svg(
          "rect",
          { x: 0, y: y + 12, width: Math.max(width, 1), height: 10 },
          svg("title", {}, `${bar.label}: ${format(bar.value)}`),
        ),
        svg("text", { x: Math.max(width, 1) + 4, y: y + 21, class: "chart-value" }, format(bar.value)),
      );
    }),
  );
  return h("figure", { class: "chart" }, h("figcaption", {}, title), chart);
}

function truncate(text: string, length: number): string {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

/** A half-circle gauge of a fraction, with a tick at the alert threshold. */
export function gauge(fraction: number, threshold: number, label: string, tone: string): SVGSVGElement {
  const radius = 80;
  const cx = 100;
  const cy = 95;
  const point = (f: number): [number, number] => {
    const angle = Math.PI * (1 - Math.min(Math.max(f, 0), 1));
    return [cx + radius * Math.cos(angle), cy - radius * Math.sin(angle)];
  };
  const arc = (f: number): string => {
    const [x, y] = point(f);
    return `M ${cx - radius} ${cy} A ${radius} ${radius} 0 0 1 ${x.toFixed(2)} ${y.toFixed(2)}`;
  };
  const [tx1, ty1] = point(threshold);
  const inner = radius - 18;
  const tickInner: [number, number] = [
    cx + (inner / radius) * (tx1 - cx),
    cy + (inner / radius) * (ty1 - cy),
  ];
  const titleId = uid("gauge");
  return svg(
    "svg",
    { viewBox: "0 0 200 110", role: "img", "aria-labelledby": titleId, class: `gauge gauge--${tone}` },
    svg("title", { id: titleId }, label),
    svg("path", { d: arc(1), class: "gauge-track" }),
    fraction > 0 ? svg("path", { d: arc(fraction), class: "gauge-value" }) : null,
    threshold > 0 && threshold < 1
      ? svg("line", { x1: tx1, y1: ty1, x2: tickInner[0], y2: tickInner[1], class: "gauge-threshold" })
      : null,
    svg(
      "text",
      { x: cx, y: cy - 8, "text-anchor": "middle", class: "gauge-text" },
      `${Math.round(fraction * 100)} %`,
    ),
  );
}
