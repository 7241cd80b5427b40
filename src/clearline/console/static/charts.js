// What the simulation and sensitivity views share: numbers to three significant figures as
// the report writes them (sim/display.py), points with interval whiskers, the heatmap scale
// and its colour key. Names, axes and colours come from the server with the results
// (`display`), so the console and the HTML report cannot drift apart.
"use strict";

const Charts = (() => {
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

  // `x` to `digits` significant figures, never in exponent form (0.285, 0.0120, 477, 12,300);
  // halves round away from zero, as display.sig does.
  function sig(x, digits = 3) {
    if (x == null || Number.isNaN(Number(x))) return "-";
    const v = Number(x);
    if (!Number.isFinite(v)) return v > 0 ? "∞" : "-∞";
    if (v === 0) return "0";
    const rounded = Number(v.toExponential(digits - 1));
    const decimals = Math.max(0, digits - 1 - Math.floor(Math.log10(Math.abs(rounded))));
    return rounded.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
  }

  // [estimate, interval or ""], as display.format_estimate splits them.
  function estimate(o) {
    if (!o || o.estimate == null) return ["-", ""];
    const exact = o.low != null && o.low === o.high;
    if (exact && Number.isInteger(o.estimate)) return [o.estimate.toLocaleString("en-US"), ""];
    if (o.low == null || o.high == null || exact) return [sig(o.estimate), ""];
    return [sig(o.estimate), `[${sig(o.low)}, ${sig(o.high)}]`];
  }
  const estimateText = (o) => estimate(o).filter(Boolean).join(" ");

  const label = (display, name) => display.labels[name] || name.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
  const tick = (v) => String(Number(Number(v).toPrecision(12)));

  function card(title) {
    const section = document.createElement("section");
    section.className = "card";
    const h2 = document.createElement("h2");
    h2.textContent = title;
    section.append(h2);
    document.getElementById("results").append(section);
    return section;
  }

  // A point at `at` with its interval from `from` to `to` (pixels, along the whisker), across at
  // `across`: caps wider than the point, so a narrow interval still shows. `data` becomes
  // data-* attributes of the point.
  function whisker({ at, from, to, across, horizontal = false, colour, filled = true, r = 4, title = "", data = {} }) {
    const cap = r + 4;
    const pos = (along, off) => (horizontal ? [along, across + off] : [across + off, along]);
    const line = ([x1, y1], [x2, y2], cls) =>
      `<line class="${cls}" x1="${x1}" y1="${y1}" x2="${x2}" y2="${y2}" stroke="${colour}" stroke-width="2"/>`;
    const attrs = Object.entries(data).map(([k, v]) => ` data-${k}="${esc(v)}"`).join("");
    const [cx, cy] = pos(at, 0);
    return `<g class="whisker"${attrs}>` +
      line(pos(from, 0), pos(to, 0), "span") +
      line(pos(from, -cap), pos(from, cap), "cap") +
      line(pos(to, -cap), pos(to, cap), "cap") +
      `<circle cx="${cx}" cy="${cy}" r="${r}" fill="${filled ? colour : "white"}" stroke="${colour}" stroke-width="2"${attrs}><title>${esc(title)}</title></circle></g>`;
  }

  const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

  // The scale's colour for a probability, interpolated between its stops (display.heat_colour).
  function heatColour(value, scale) {
    const place = Math.min(1, Math.max(0, value)) * (scale.length - 1);
    const i = Math.min(Math.floor(place), scale.length - 2);
    const t = place - i;
    const [a, b] = [rgb(scale[i]), rgb(scale[i + 1])];
    return "#" + a.map((x, k) => Math.round(x + (b[k] - x) * t).toString(16).padStart(2, "0")).join("");
  }

  // Black or white, whichever reads better on `hex` (display.ink_on).
  function inkOn(hex) {
    const linear = (c) => { const s = c / 255; return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4; };
    const [r, g, b] = rgb(hex).map(linear);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.179 ? "#000000" : "#ffffff";
  }

  // A horizontal colour key for the heatmaps: the scale from its axis' low to high end, ticked.
  function colourKey(display, title) {
    const [lo, hi] = display.probability_axis;
    const w = 420, left = 10, right = 10, bar = 14;
    const x = (v) => left + ((v - lo) / (hi - lo)) * (w - left - right);
    const stops = display.scale.map((c, i) => `<stop offset="${i / (display.scale.length - 1)}" stop-color="${c}"/>`).join("");
    let svg = `<svg class="colour-key" viewBox="0 0 ${w} 58" width="${w}" role="img" aria-label="${esc(title)}: colour key">`;
    svg += `<defs><linearGradient id="heat-scale">${stops}</linearGradient></defs>`;
    svg += `<text x="${left}" y="12" font-size="12" fill="currentColor">${esc(title)}</text>`;
    svg += `<rect x="${x(lo)}" y="18" width="${x(hi) - x(lo)}" height="${bar}" fill="url(#heat-scale)" stroke="currentColor" stroke-opacity=".4"/>`;
    for (const t of display.probability_ticks) {
      svg += `<line x1="${x(t)}" x2="${x(t)}" y1="${18 + bar}" y2="${22 + bar}" stroke="currentColor"/>`;
      svg += `<text class="tick" x="${x(t)}" y="${36 + bar}" text-anchor="middle" font-size="11" fill="currentColor">${tick(t)}</text>`;
    }
    return svg + "</svg>";
  }

  return { esc, sig, estimate, estimateText, label, tick, card, whisker, heatColour, inkOn, colourKey };
})();
