// The sensitivity view of a `sim sensitivity` folder: per arm, each parameter's indices
// (Sobol S1 and ST, or Morris mu* and sigma) as points with interval whiskers, for the arm's
// P(kinetic before any human) and for its paired difference against none. Numbers, whiskers
// and colours as in the simulation view and the HTML report (charts.js).
"use strict";

const { esc, sig, tick, estimateText, card, whisker } = Charts;
const KEYS = {
  sobol: [["S1", "first-order S1", true], ["ST", "total ST", false]],
  morris: [["mu_star", "mu*", true], ["sigma", "sigma", false]],
};

function chart(study, output, colour, paramLabels = {}) {
  const names = study.params.map((p) => p.path);
  const keys = KEYS[study.method];
  const found = output.indices;
  const id = `${output.arm}/${output.quantity}`;
  if (!found) return `<p class="muted" data-output="${esc(id)}">${esc(output.note)}</p>`;
  const values = names.flatMap((n) => keys.flatMap(([k]) => [found[n][k].low, found[n][k].high, found[n][k].estimate]))
    .filter((v) => v != null);
  const lo = Math.min(0, ...values), hi = study.method === "sobol" ? Math.max(1, ...values) : Math.max(...values, 1e-9);
  const w = 700, left = 260, right = 80, rowH = 40, top = 26, h = top + rowH * names.length + 30;
  const x = (v) => left + ((v - lo) / (hi - lo)) * (w - left - right);
  let svg = `<svg class="chart" viewBox="0 0 ${w} ${h}" width="100%" role="img" data-output="${esc(id)}" aria-label="${esc(output.label)}">`;
  // Ticks at round steps (1, 2, 2.5 or 5 times a power of ten), about four of them.
  const raw = (hi - lo) / 4, power = 10 ** Math.floor(Math.log10(raw));
  const step = power * ([1, 2, 2.5, 5, 10].find((m) => m * power >= raw) || 10);
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) {
    svg += `<line x1="${x(t)}" x2="${x(t)}" y1="${top - 6}" y2="${h - 24}" stroke="currentColor" stroke-opacity=".15"/>`;
    svg += `<text x="${x(t)}" y="${h - 8}" text-anchor="middle" font-size="11" fill="currentColor">${tick(t)}</text>`;
  }
  svg += `<line x1="${x(0)}" x2="${x(0)}" y1="${top - 6}" y2="${h - 24}" stroke="currentColor" stroke-opacity=".6"/>`;
  // The legend: each entry shows its index's glyph; clicking it (or Enter) hides or shows it.
  keys.forEach(([key, label, filled], k) => {
    const lx = left + k * 150;
    svg += `<g class="legend-item" data-index="${key}" role="button" tabindex="0" aria-pressed="true" style="cursor:pointer">`;
    svg += `<rect x="${lx - 4}" y="0" width="140" height="20" fill="transparent"/>`;
    svg += whisker({ at: lx + 8, from: lx + 1, to: lx + 15, across: 10, horizontal: true, colour, filled });
    svg += `<text x="${lx + 24}" y="14" font-size="12" fill="currentColor" class="legend">${label}</text></g>`;
  });
  names.forEach((name, r) => {
    const yc = top + r * rowH + rowH / 2;
    const shown = paramLabels[name] || name;
    svg += `<text x="${left - 8}" y="${yc + 4}" text-anchor="end" font-size="11" fill="currentColor" class="param" data-param="${esc(name)}">${esc(shown.length > 40 ? shown.slice(0, 39) + "…" : shown)}<title>${esc(shown)} (${esc(name)})</title></text>`;
    keys.forEach(([key, label, filled], k) => {
      const o = found[name][key];
      if (o.estimate == null) return;
      const y = yc + (k === 0 ? -9 : 9);
      const low = o.low ?? o.estimate, high = o.high ?? o.estimate;
      svg += whisker({ at: x(o.estimate), from: x(low), to: x(high), across: y, horizontal: true, colour, filled,
        title: `${shown} ${label}: ${estimateText(o)}`, data: { param: name, index: key, estimate: o.estimate, low, high } });
      svg += `<text class="value" data-index="${key}" x="${w - right + 10}" y="${y + 4}" font-size="11" fill="currentColor">${label.split(" ").pop()} ${sig(o.estimate)}</text>`;
    });
  });
  return svg + "</svg>";
}

async function main() {
  const response = await fetch("/results/summary");
  const body = await response.json();
  if (!response.ok || body.kind !== "sensitivity") {
    const text = response.ok ? "This results folder is not a sensitivity study: see the simulation results page." : body.detail;
    card("No sensitivity study").append(Object.assign(document.createElement("p"), { textContent: text }));
    document.body.dataset.ready = "true";
    return;
  }
  const study = body.data;
  document.getElementById("meta").innerHTML = `${esc(study.method)} study of <b>${esc(study.scenario)}</b>: ${study.points} points x ${study.episodes} episodes, seed ${study.seed}, intervals ${Math.round(study.conf_level * 100)}% · <a href="/results/report" id="report-link">HTML report</a>`;
  for (const arm of study.arms) {
    const section = card(`${arm}: which parameters move P(kinetic before any human)`);
    section.dataset.arm = arm;
    for (const output of study.outputs.filter((o) => o.arm === arm)) {
      const figure = document.createElement("figure");
      figure.innerHTML = `<h3>${esc(output.label)}</h3><p class="muted">mean ${sig(output.mean)} over the points (${sig(output.min)} to ${sig(output.max)})</p>` + chart(study, output, body.display.arm_colours[arm] || "#444", body.display.param_labels);
      section.append(figure);
    }
  }
  for (const item of document.querySelectorAll("svg.chart .legend-item")) {
    const toggle = () => {
      const shown = item.getAttribute("aria-pressed") !== "true";
      item.setAttribute("aria-pressed", String(shown));
      item.style.opacity = shown ? "1" : "0.4";
      const chart = item.closest("svg");
      for (const mark of chart.querySelectorAll(`g.whisker[data-index="${item.dataset.index}"], text.value[data-index="${item.dataset.index}"]`)) {
        mark.style.display = shown ? "" : "none";
      }
    };
    item.addEventListener("click", toggle);
    item.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(); } });
  }
  const notes = card("How these were computed");
  for (const note of study.notes) notes.append(Object.assign(document.createElement("p"), { textContent: note }));
  document.body.dataset.ready = "true";
}

main();
