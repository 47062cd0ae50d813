// The dashboard's charts, drawn as inline SVG: a grouped bar chart of points over time
// and a bar chart of the tier mix, each with its table beside it for screen readers and
// for anyone who wants the exact numbers. Written here rather than taken from a chart
// library: two bar charts are a few dozen lines, and the page then loads nothing more.

import { html } from "/static/vendor/htm@3.1.1/standalone.module.js";

const number = new Intl.NumberFormat("en-US");
export const formatNumber = (value) => number.format(value);

// A bucket's start, "2026-03-09T00:00:00-04:00", is a date of the program's calendar:
// read the date as written, not in the browser's time zone.
export function bucketLabel(start, interval) {
  const [year, month, day] = start.slice(0, 10).split("-").map(Number);
  const date = new Date(Date.UTC(year, month - 1, day));
  const options =
    interval === "MONTH"
      ? { month: "short", year: "numeric", timeZone: "UTC" }
      : { month: "short", day: "numeric", timeZone: "UTC" };
  return date.toLocaleDateString("en-US", options);
}

// Round numbers for the axis: 1, 2 or 5 times a power of ten, about `count` steps.
export function ticks(low, high, count = 4) {
  if (high <= low) high = low + 1;
  const raw = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * power).find((s) => s >= raw);
  const values = [];
  for (let v = Math.floor(low / step) * step; v <= high + step / 2; v += step) values.push(v);
  if (values[values.length - 1] < high) values.push(values[values.length - 1] + step);
  return values;
}

const SERIES = [
  { key: "issued", name: "Issued" },
  { key: "redeemed", name: "Redeemed" },
];

export function PointsChart({ buckets, interval, caption }) {
  const width = 760;
  const height = 280;
  const margin = { top: 16, right: 12, bottom: 44, left: 64 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const values = buckets.flatMap((b) => SERIES.map((s) => b[s.key]));
  const axis = ticks(Math.min(0, ...values), Math.max(0, ...values));
  const low = axis[0];
  const high = axis[axis.length - 1];
  const y = (v) => margin.top + plotHeight - ((v - low) / (high - low)) * plotHeight;
  const slot = plotWidth / Math.max(buckets.length, 1);
  const bar = Math.max(1, (slot * 0.8) / SERIES.length);
  const every = Math.ceil(buckets.length / 10); // at most about ten labels under the axis
  const totals = SERIES.map((s) => buckets.reduce((sum, b) => sum + b[s.key], 0));
  const summary = SERIES.map((s, i) => `${formatNumber(totals[i])} ${s.name.toLowerCase()}`);

  return html`<figure class="chart">
    <figcaption id="points-caption">${caption}</figcaption>
    <ul class="legend" aria-hidden="true">
      ${SERIES.map((s) => html`<li><span class=${`swatch ${s.key}`}></span>${s.name}</li>`)}
    </ul>
    <svg class="points-chart" viewBox=${`0 0 ${width} ${height}`} role="img"
         aria-labelledby="points-caption points-summary" focusable="false">
      <desc id="points-summary">In total ${summary.join(", ")}; the table below lists
        every ${interval.toLowerCase()}.</desc>
      ${axis.map(
        (v) => html`<g class="tick">
          <line x1=${margin.left} x2=${width - margin.right} y1=${y(v)} y2=${y(v)} />
          <text x=${margin.left - 8} y=${y(v)} dy="0.32em" text-anchor="end">${formatNumber(v)}</text>
        </g>`,
      )}
      <line class="zero" x1=${margin.left} x2=${width - margin.right} y1=${y(0)} y2=${y(0)} />
      ${buckets.map((b, i) => {
        const x = margin.left + i * slot + slot * 0.1;
        return html`<g class="bucket" data-start=${b.start}>
          ${SERIES.map((s, j) => {
            const value = b[s.key];
            const top = Math.min(y(value), y(0));
            return html`<rect class=${`bar ${s.key}`} data-series=${s.key} data-value=${value}
              x=${x + j * bar} y=${top} width=${bar} height=${Math.abs(y(value) - y(0))}>
              <title>${bucketLabel(b.start, interval)}: ${formatNumber(value)} ${s.name.toLowerCase()}</title>
            </rect>`;
          })}
          ${i % every === 0
            ? html`<text class="label" x=${x + (bar * SERIES.length) / 2} y=${height - margin.bottom + 18}
                text-anchor="middle">${bucketLabel(b.start, interval)}</text>`
            : null}
        </g>`;
      })}
    </svg>
    <details class="alternative">
      <summary>Points per ${interval.toLowerCase()} as a table</summary>
      <table class="series-table">
        <caption class="visually-hidden">${caption}</caption>
        <thead><tr><th scope="col">Period</th><th scope="col">Issued</th>
          <th scope="col">Redeemed</th><th scope="col">Expired</th></tr></thead>
        <tbody>
          ${buckets.map(
            (b) => html`<tr data-start=${b.start}>
              <th scope="row">${bucketLabel(b.start, interval)}</th>
              <td>${formatNumber(b.issued)}</td><td>${formatNumber(b.redeemed)}</td>
              <td>${formatNumber(b.expired)}</td></tr>`,
          )}
        </tbody>
      </table>
    </details>
  </figure>`;
}

export function TierChart({ tiers }) {
  const total = tiers.reduce((sum, t) => sum + t.members, 0);
  const share = (members) => (total ? Math.round((members / total) * 100) : 0);
  const width = 760;
  const row = 36;
  const labelWidth = 120;
  const valueWidth = 120;
  const plot = width - labelWidth - valueWidth;
  const most = Math.max(1, ...tiers.map((t) => t.members));
  const height = tiers.length * row + 8;
  const described = tiers.map((t) => `${t.tier} ${formatNumber(t.members)} (${share(t.members)}%)`);

  return html`<figure class="chart">
    <figcaption id="tiers-caption">Members per tier</figcaption>
    <svg class="tier-chart" viewBox=${`0 0 ${width} ${height}`} role="img"
         aria-labelledby="tiers-caption tiers-summary" focusable="false">
      <desc id="tiers-summary">${described.join(", ")}.</desc>
      ${tiers.map(
        (t, i) => html`<g class="tier" data-tier=${t.tier}>
          <text x=${labelWidth - 10} y=${i * row + row / 2 + 4} dy="0.32em" text-anchor="end">${t.tier}</text>
          <rect class="bar tier-bar" data-value=${t.members} x=${labelWidth} y=${i * row + 8}
            width=${(t.members / most) * plot} height=${row - 12}>
            <title>${t.tier}: ${formatNumber(t.members)} members</title>
          </rect>
          <text class="value" x=${labelWidth + (t.members / most) * plot + 8} y=${i * row + row / 2 + 4}
            dy="0.32em">${formatNumber(t.members)} (${share(t.members)}%)</text>
        </g>`,
      )}
    </svg>
    <details class="alternative">
      <summary>Members per tier as a table</summary>
      <table class="tier-table">
        <caption class="visually-hidden">Members per tier</caption>
        <thead><tr><th scope="col">Tier</th><th scope="col">Members</th>
          <th scope="col">Share</th></tr></thead>
        <tbody>
          ${tiers.map(
            (t) => html`<tr data-tier=${t.tier}><th scope="row">${t.tier}</th>
              <td>${formatNumber(t.members)}</td><td>${share(t.members)}%</td></tr>`,
          )}
        </tbody>
      </table>
    </details>
  </figure>`;
}
