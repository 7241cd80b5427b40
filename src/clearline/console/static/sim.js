// The simulation view: a `sim run` (arms side by side, survival curves) or a `sim sweep`
// (one heatmap per arm; hovering a cell shows its numbers).
"use strict";

const DASHES = { none: [], analog: [8, 4], hotline: [2, 3], "hotline+gate": [], gate: [12, 3, 2, 3] };
const COLOURS = { none: "#b2182b", analog: "#ef8a62", hotline: "#67a9cf", "hotline+gate": "#2166ac", gate: "#888888" };
const fmt = (x, d = 3) => (x == null ? "-" : Number(x).toFixed(d));

function card(title) {
  const section = document.createElement("section");
  section.className = "card";
  const h2 = document.createElement("h2");
  h2.textContent = title;
  section.append(h2);
  document.getElementById("results").append(section);
  return section;
}

function armsTable(data) {
  const section = card(`${data.scenario}: arms side by side`);
  const names = [
    ["kinetic_before_human", "P(kinetic before any human)"],
    ["false_reassurance", "P(false reassurance)"],
    ["time_to_first_kinetic_s", "median s to first kinetic"],
    ["excluded_domain_allowed", "excluded-domain actions allowed"],
    ["mean_escalation_score", "mean escalation score"],
  ];
  const table = document.createElement("table");
  table.id = "arms";
  const head = document.createElement("tr");
  head.innerHTML = "<th>arm</th><th class=num>episodes</th>" + names.map(([, l]) => `<th>${l}</th>`).join("");
  table.append(head);
  for (const [arm, entry] of Object.entries(data.arms)) {
    const tr = document.createElement("tr");
    tr.dataset.arm = arm;
    const cells = [`<th>${arm}</th>`, `<td class=num>${entry.episodes}</td>`];
    for (const [name] of names) {
      const o = entry.outcomes[name] || {};
      const interval = o.low != null && o.low !== o.high ? ` <small class=muted>[${fmt(o.low)}, ${fmt(o.high)}]</small>` : "";
      cells.push(`<td data-outcome="${name}" data-estimate="${o.estimate ?? ""}">${fmt(o.estimate)}${interval}</td>`);
    }
    tr.innerHTML = cells.join("");
    table.append(tr);
  }
  section.append(table);

  // Estimates with their intervals, drawn as points with error bars.
  const arms = Object.keys(data.arms);
  const w = 560, h = 200, left = 50, bottom = 30;
  const x = (i) => left + (i + 0.5) * ((w - left) / arms.length);
  const y = (v) => 10 + (1 - v) * (h - bottom - 10);
  let svg = `<svg id="kbh-chart" viewBox="0 0 ${w} ${h}" width="100%" role="img" aria-label="P(kinetic before human) by arm">`;
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    svg += `<line x1="${left}" x2="${w}" y1="${y(t)}" y2="${y(t)}" stroke="currentColor" stroke-opacity=".15"/>`;
    svg += `<text x="${left - 6}" y="${y(t) + 4}" text-anchor="end" font-size="11" fill="currentColor">${t}</text>`;
  }
  arms.forEach((arm, i) => {
    const o = data.arms[arm].outcomes.kinetic_before_human;
    const c = COLOURS[arm] || "#444";
    svg += `<line x1="${x(i)}" x2="${x(i)}" y1="${y(o.low)}" y2="${y(o.high)}" stroke="${c}" stroke-width="2"/>`;
    svg += `<circle cx="${x(i)}" cy="${y(o.estimate)}" r="5" fill="${c}" data-arm="${arm}" data-estimate="${o.estimate}"><title>${arm}: ${fmt(o.estimate)} [${fmt(o.low)}, ${fmt(o.high)}]</title></circle>`;
    svg += `<text x="${x(i)}" y="${h - 8}" text-anchor="middle" font-size="12" fill="currentColor">${arm}</text>`;
  });
  svg += "</svg>";
  const figure = document.createElement("figure");
  figure.innerHTML = `<h3>P(kinetic before any human decision), 95% Wilson intervals</h3>${svg}`;
  section.append(figure);
}

async function survival() {
  const response = await fetch("/results/survival");
  if (!response.ok) return;
  const curves = await response.json();
  const section = card("Time to the first kinetic act");
  const arms = Object.keys(curves.arms);
  const holder = document.createElement("div");
  holder.id = "survival";
  section.append(holder);
  const plot = new uPlot({
    width: Math.max(320, holder.clientWidth || 560), height: 260,
    scales: { x: { time: false, distr: 3 }, y: { range: [0, 1.02] } },
    axes: [{ label: "seconds since the episode began", stroke: "#888" }, { label: "P(no kinetic act yet)", stroke: "#888" }],
    series: [{ label: "s" }, ...arms.map((arm) => ({ label: arm, stroke: COLOURS[arm] || "#444", width: 2, dash: DASHES[arm] || [], paths: uPlot.paths.stepped({ align: 1 }) }))],
  }, [curves.t, ...arms.map((a) => curves.arms[a])], holder);
  holder.dataset.arms = arms.join(",");
  window.survivalPlot = plot;
}

function heatmaps(sweep) {
  const [ax, ay] = sweep.axes;
  for (const arm of sweep.arms) {
    const section = card(`${arm}: P(kinetic before any human) over the sweep`);
    const table = document.createElement("table");
    table.className = "heatmap";
    table.dataset.arm = arm;
    const ys = ay ? ay.values : [null];
    let html = `<tr><th>${ay ? ay.path : ""} \\ ${ax.path}</th>` + ax.values.map((v) => `<th>${v}</th>`).join("") + "</tr>";
    for (const yv of ys.slice().reverse()) {
      html += `<tr><th>${yv ?? ""}</th>`;
      for (const xv of ax.values) {
        const cell = sweep.cells.find((c) => c.settings[ax.path] === xv && (!ay || c.settings[ay.path] === yv));
        const o = cell ? cell.arms[arm].kinetic_before_human : null;
        const v = o ? o.estimate : null;
        const hue = v == null ? "#ccc" : `hsl(${(1 - v) * 120}, 70%, ${70 - v * 15}%)`;
        const title = o ? `${ax.path}=${xv}${ay ? `, ${ay.path}=${yv}` : ""}: ${fmt(o.estimate)} [${fmt(o.low)}, ${fmt(o.high)}]` : "no data";
        html += `<td tabindex="0" style="background:${hue}" title="${title}" aria-label="${title}" data-estimate="${v ?? ""}">${fmt(v)}</td>`;
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
  const { kind, data } = await response.json();
  const meta = document.getElementById("meta");
  meta.innerHTML = `${kind === "run" ? "run" : "sweep"} of <b>${data.scenario}</b>, seed ${data.seed}, signer ${data.signer} · <a href="/results/report" id="report-link">HTML report</a>`;
  if (kind === "run") {
    armsTable(data);
    await survival();
  } else {
    heatmaps(data);
  }
  document.body.dataset.ready = "true";
}

main();
