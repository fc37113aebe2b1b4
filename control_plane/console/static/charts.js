// Stacked bar charts as inline SVG, drawn with DOM calls (no library, no HTML strings).

import { h } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
const COLOURS = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#4b5563", "#db2777"];

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

export function colour(index) {
  return COLOURS[index % COLOURS.length];
}

// `buckets`: labels along x; `series`: [{name, values}] with one value per bucket.
export function stackedBars(title, buckets, series, format = (v) => String(v)) {
  const width = 640;
  const height = 220;
  const left = 56;
  const bottom = 28;
  const totals = buckets.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  const top = Math.max(...totals, 0) || 1;
  const slot = (width - left - 8) / Math.max(buckets.length, 1);
  const bar = Math.max(Math.min(slot * 0.7, 48), 2);
  const scale = (v) => (v / top) * (height - bottom - 12);
  const summary = buckets.map((b, i) => `${b}: ${format(totals[i])}`).join("; ");
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}. ${summary}`, class: "chart" },
    svg("title", {}, title));
  for (const fraction of [0, 0.5, 1]) {
    const y = height - bottom - scale(top * fraction);
    chart.append(svg("line", { x1: left, x2: width - 8, y1: y, y2: y, class: "grid" }),
      svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "axis" }, format(top * fraction)));
  }
  buckets.forEach((label, i) => {
    const x = left + i * slot + (slot - bar) / 2;
    let y = height - bottom;
    series.forEach((s, j) => {
      const value = s.values[i] || 0;
      if (!value) return;
      const tall = scale(value);
      y -= tall;
      chart.append(svg("rect", { x, y, width: bar, height: tall, fill: colour(j) }, svg("title", {}, `${label} · ${s.name}: ${format(value)}`)));
    });
    if (buckets.length <= 16 || i % Math.ceil(buckets.length / 16) === 0) {
      chart.append(svg("text", { x: x + bar / 2, y: height - 10, "text-anchor": "middle", class: "axis" }, label));
    }
  });
  const legend = h("ul", { class: "legend" }, series.map((s, j) => h("li", {}, h("span", { class: "swatch", "data-colour": j % COLOURS.length }), s.name)));
  return h("figure", { class: "chart-box" }, h("figcaption", {}, title), chart, legend);
}
