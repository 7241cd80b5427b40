// The simulation view: a `sim run` (arms side by side, each arm's probability with its
// whisker, survival curves) or a `sim sweep` (one heatmap per arm on the viridis scale, with
// its colour key; hovering or focusing a cell shows its numbers). Names, axes and colours
// are the HTML report's (charts.js).
"use strict";

const { esc, sig, estimate, estimateText, label, tick, card, whisker, heatColour, inkOn, colourKey } = Charts;
const DASHES = { none: [], analog: [8, 4], hotline: [2, 3], "hotline+gate": [], gate: [12, 3, 2, 3] };
const TABLE = ["kinetic_before_any_human", "false_reassurance", "time_to_first_kinetic_s", "excluded_domain_allowed", "mean_escalation_score"];
const KINETIC = "kinetic_before_any_human";

function armsTable(data, display) {
  const section = card(`${data.scenario}: arms side by side`);
  section.classList.add("wide");
  const table = document.createElement("table");
  table.id = "arms";
  const head = document.createElement("tr");
  head.innerHTML = `<th>${label(display, "arm")}</th><th class=num>${label(display, "episodes")}</th>` +
    TABLE.map((n) => `<th class=num>${esc(label(display, n))}</th>`).join("");
  table.append(head);
  for (const [arm, entry] of Object.entries(data.arms)) {
    const tr = document.createElement("tr");
    tr.dataset.arm = arm;
    const cells = [`<th>${esc(arm)}</th>`, `<td class=num>${entry.episodes.toLocaleString("en-US")}</td>`];
    for (const name of TABLE) {
      const o = entry.outcomes[name] || {};
      const [value, interval] = estimate(o);
      const below = interval ? `<br><small class=muted>${interval}</small>` : "";
      cells.push(`<td class=num data-outcome="${name}" data-estimate="${o.estimate ?? ""}">${value}${below}</td>`);
    }
    tr.innerHTML = cells.join("");
    table.append(tr);
  }
  section.append(table);
  section.append(Object.assign(document.createElement("p"), {
    className: "muted",
    textContent: "95% intervals below each estimate: Wilson for probabilities, bootstrap for medians and means; counts are exact.",
  }));
  card(`${label(display, KINETIC)} by arm`).append(kineticChart(data, display));
}

// Each arm's probability of a kinetic act before any human, on the report's axis.
function kineticChart(data, display) {
  const arms = Object.keys(data.arms);
  const [lo, hi] = display.probability_axis;
  const w = 640, h = 250, left = 56, top = 34, bottom = 28;
  const x = (i) => left + (i + 0.5) * ((w - left) / arms.length);
  const y = (v) => top + ((hi - v) / (hi - lo)) * (h - top - bottom);
  let svg = `<svg id="kbh-chart" viewBox="0 0 ${w} ${h}" width="100%" role="img" aria-label="${esc(label(display, KINETIC))} by arm">`;
  for (const t of display.probability_ticks) {
    svg += `<line x1="${left}" x2="${w}" y1="${y(t)}" y2="${y(t)}" stroke="currentColor" stroke-opacity=".15"/>`;
    svg += `<text class="tick" x="${left - 6}" y="${y(t) + 4}" text-anchor="end" font-size="11" fill="currentColor">${tick(t)}</text>`;
  }
  arms.forEach((arm, i) => {
    const o = data.arms[arm].outcomes[KINETIC];
    if (o.estimate == null) return;
    const colour = display.arm_colours[arm] || "#444";
    const low = o.low ?? o.estimate, high = o.high ?? o.estimate;
    svg += whisker({ at: y(o.estimate), from: y(low), to: y(high), across: x(i), colour,
      title: `${arm}: ${estimateText(o)}`, data: { arm, estimate: o.estimate, low, high } });
    svg += `<text class="value" data-arm="${esc(arm)}" x="${x(i)}" y="${y(high) - 22}" text-anchor="middle" font-size="11" fill="currentColor">${sig(o.estimate)}</text>`;
    svg += `<text x="${x(i)}" y="${y(high) - 9}" text-anchor="middle" font-size="10" fill="currentColor" opacity=".75">[${sig(low)}, ${sig(high)}]</text>`;
    svg += `<text x="${x(i)}" y="${h - 8}" text-anchor="middle" font-size="12" fill="currentColor">${esc(arm)}</text>`;
  });
  svg += `<text x="12" y="${(h - bottom + top) / 2}" font-size="11" fill="currentColor" text-anchor="middle" transform="rotate(-90 12 ${(h - bottom + top) / 2})">${esc(label(display, KINETIC))}</text>`;
  svg += "</svg>";
  const figure = document.createElement("figure");
  figure.innerHTML = `<h3>95% Wilson intervals</h3>${svg}`;
  return figure;
}

// Survival curves: the report's (sim/curves.py), on its axes; the legend names each arm
// and hides or shows it when clicked.
async function survival(display) {
  const response = await fetch("/results/survival");
  if (!response.ok) return;
  const curves = await response.json();
  const section = card("Time to the first kinetic act");
  const arms = Object.keys(curves.arms);
  const holder = document.createElement("div");
  holder.id = "survival";
  section.append(holder);
  const [lo, hi] = display.probability_axis;
  const t = curves.t;
  const plot = new uPlot({
    width: Math.max(320, holder.clientWidth || 560), height: 280,
    scales: { x: { time: false, distr: 3, range: () => [t[0], t[t.length - 1]] }, y: { range: () => [lo, hi] } },
    axes: [
      { label: "Seconds since the episode began", stroke: "#888" },
      { label: "P(no kinetic act yet)", stroke: "#888", splits: () => display.probability_ticks, values: (u, ticks) => ticks.map(tick) },
    ],
    series: [
      { label: "Seconds", value: (u, v) => (v == null ? "-" : sig(v)) },
      ...arms.map((arm) => ({
        label: arm, stroke: display.arm_colours[arm] || "#444", width: 2, dash: DASHES[arm] || [],
        paths: uPlot.paths.stepped({ align: 1 }), value: (u, v) => (v == null ? "-" : sig(v)),
      })),
    ],
    legend: { live: true },
  }, [t, ...arms.map((a) => curves.arms[a])], holder);
  holder.dataset.arms = arms.join(",");
  window.survivalPlot = plot;
}

function heatmaps(sweep, display) {
  const [ax, ay] = sweep.axes;
  // A setting's human name, with the path that repeats the sweep (`--param PATH=...`).
  const setting = (path) => `${(display.param_labels || {})[path] || path} (${path})`;
  const title = label(display, KINETIC);
  const keyCard = card(`${title}: colour key`);
  keyCard.id = "colour-key";
  keyCard.classList.add("wide");
  keyCard.insertAdjacentHTML("beforeend", colourKey(display, title));
  for (const arm of sweep.arms) {
    const section = card(`${arm}: ${title} over the sweep`);
    const table = document.createElement("table");
    table.className = "heatmap";
    table.dataset.arm = arm;
    const ys = ay ? ay.values : [null];
    section.append(Object.assign(document.createElement("p"), {
      className: "muted axes", textContent: `Rows: ${ay ? setting(ay.path) : "-"}; columns: ${setting(ax.path)}`,
    }));
    let html = "<tr><th></th>" + ax.values.map((v) => `<th>${esc(v)}</th>`).join("") + "</tr>";
    for (const yv of ys.slice().reverse()) {
      html += `<tr><th>${esc(yv ?? "")}</th>`;
      for (const xv of ax.values) {
        const cell = sweep.cells.find((c) => c.settings[ax.path] === xv && (!ay || c.settings[ay.path] === yv));
        const o = cell ? cell.arms[arm][KINETIC] : null;
        const v = o ? o.estimate : null;
        const fill = v == null ? "#cccccc" : heatColour(v, display.scale);
        const where = `${ax.path}=${xv}${ay ? `, ${ay.path}=${yv}` : ""}`;
        const text = o ? `${where}: ${estimateText(o)}` : "no data";
        const [value, interval] = estimate(o);
        html += `<td tabindex="0" style="background:${fill};color:${inkOn(fill)}" title="${esc(text)}" aria-label="${esc(text)}" data-estimate="${v ?? ""}">${value}${interval ? `<br><small>${interval}</small>` : ""}</td>`;
      }
      html += "</tr>";
    }
    table.innerHTML = html;
    section.append(table);
  }
}

async function main() {
  const response = await fetch("/results/summary");
  if (!response.ok) {
    card("No results").append(Object.assign(document.createElement("p"), {
      textContent: (await response.json()).detail || "start with: clearline console --results DIR" }));
    document.body.dataset.ready = "true";
    return;
  }
  const { kind, data, display } = await response.json();
  const meta = document.getElementById("meta");
  meta.innerHTML = `${kind === "run" ? "run" : "sweep"} of <b>${esc(data.scenario)}</b>, seed ${data.seed}, signer ${esc(data.signer)} · <a href="/results/report" id="report-link">HTML report</a>`;
  if (kind === "run") {
    armsTable(data, display);
    await survival(display);
  } else {
    heatmaps(data, display);
  }
  document.body.dataset.ready = "true";
}

main();
