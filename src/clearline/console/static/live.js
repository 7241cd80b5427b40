// The live view: one panel per node, fed by the node's own event stream.
// Memory in the page is bounded: every list keeps a fixed number of entries.
// Reads go with the console session (an HttpOnly cookie set by POST /console/login):
// same origin for this node, credentialed cross-origin reads for another node on this machine.
"use strict";

class SignInNeeded extends Error {}

const LIMITS = { messages: 2000, shown: 300, decisions: 200, clarifications: 200, rtt: 120, swarmShown: 50 };

function nodesFromUrl() {
  const param = new URLSearchParams(location.search).get("nodes");
  if (!param) return [location.origin];
  return param.split(",").map((u) => u.trim().replace(/\/$/, "")).filter(Boolean);
}

function pushBounded(list, item, limit) {
  list.push(item);
  if (list.length > limit) list.splice(0, list.length - limit);
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

// Query numbers start again in each session: a history that spans restarts holds several q1.
function clarificationKey(event) {
  return `${event.session || ""}:${event.query_seq}`;
}

function clockTime(us) {
  const d = new Date(us / 1000);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

class NodeView {
  constructor(base, root) {
    this.base = base;
    this.root = root;
    this.messages = [];
    this.kinds = new Set();
    this.decisions = [];
    this.authorityChanges = [];
    this.firstPeer = null;
    this.clarifications = new Map();
    this.rtt = [[], []];
    this.policy = null;
    this.currentRung = "monitor";
    this.kinetic = 0;
    this.field = (name) => root.querySelector(`[data-field="${name}"]`);
    this.field("api").textContent = base;
    this.field("filter-kind").addEventListener("change", () => this.renderMessages());
    // On the press, not the click: rows are redrawn every 100 ms (deadlines count down), and a
    // click whose press and release land on two drawings of the row would be lost.
    this.field("clarifications").addEventListener("mousedown", (event) => {
      const row = event.target.closest("tr.swarm");
      const query = row && this.clarifications.get(row.dataset.key);
      if (query) { query.open = !query.open; this.renderClarifications(); }
    });
    this.field("filter-dir").addEventListener("change", () => this.renderMessages());
    root.querySelector('[data-action="verify"]').addEventListener("click", () => this.verify());
    this.chart = new uPlot(
      { width: 500, height: 120, legend: { show: false },
        scales: { x: { time: true } },
        series: [{}, { label: "rtt ms", stroke: "#1f6feb", width: 2 }],
        axes: [{ stroke: "#888" }, { stroke: "#888", size: 40 }] },
      this.rtt, this.field("rtt-chart"));
    new ResizeObserver(() => {
      const width = this.field("rtt-chart").clientWidth;
      if (width > 0) this.chart.setSize({ width, height: 120 });
    }).observe(this.field("rtt-chart"));
  }

  async get(path) {
    const response = await fetch(this.base + path, { credentials: "include" });
    if (response.status === 401) throw new SignInNeeded(`${this.base}: not signed in`);
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  async start() {
    this.policy = await this.get("/v1/policy");
    const link = await this.get("/v1/link");
    this.root.dataset.side = link.side;
    this.field("side").textContent = link.side;
    this.renderLink(link);
    this.renderRoster();
    const follower = new Follower((event) => { this.apply(event); this.dirty = true; });
    const stream = new EventSource(this.base + "/v1/events/stream", { withCredentials: true });
    stream.onmessage = (message) => follower.receive(JSON.parse(message.data));
    // The stream first, then the history: what happens while it loads is kept, not lost.
    await Promise.race([new Promise((opened) => { stream.onopen = opened; }),
      new Promise((waited) => setTimeout(waited, 3000))]);
    follower.load((await this.get("/v1/history")).events);
    this.renderAll();
    setInterval(() => { if (this.dirty) { this.dirty = false; this.renderAll(); } }, 150);
    setInterval(() => this.renderClarifications(), 100);
    setInterval(async () => {
      try {
        this.renderLink(await this.get("/v1/link"));
        await this.renderLog();
        this.renderPending(await this.get("/v1/approvals/pending"));
      }
      catch (error) { this.field("link").textContent = "no node"; this.field("link").className = "value state-down"; }
    }, 1000);
    await this.renderLog();
    this.renderPending(await this.get("/v1/approvals/pending"));
  }

  apply(event) {
    switch (event.kind) {
      case "message":
        pushBounded(this.messages, event, LIMITS.messages);
        if (!this.kinds.has(event.type)) {
          this.kinds.add(event.type);
          const option = document.createElement("option");
          option.textContent = event.type;
          this.field("filter-kind").append(option);
        }
        break;
      case "query":
        this.query(event).tracks.set(event.track, { state: "open", ms: null });
        break;
      case "clarification": {
        const ms = event.elapsed_us == null ? null : event.elapsed_us / 1000;
        this.query(event).tracks.set(event.track, { state: event.outcome, ms });
        break;
      }
      case "decision":
        pushBounded(this.decisions, event, LIMITS.decisions);
        if (event.verdict === "allow") {
          this.currentRung = event.rung;
          if (event.kinetic) this.kinetic += 1;
        }
        break;
      case "peer-authority-changed":
        this.authorityChanges.push(event);
        if (this.authorityChanges.length > 20) this.authorityChanges.shift();
        break;
      case "rtt":
        this.rtt[0].push(event.at / 1e6);
        this.rtt[1].push(event.rtt_us / 1000);
        if (this.rtt[0].length > LIMITS.rtt) { this.rtt[0].shift(); this.rtt[1].shift(); }
        break;
      default:
        break;
    }
  }

  renderAll() {
    this.renderMessages();
    this.renderDecisions();
    this.renderLadder();
    this.renderClarifications();
    this.chart.setData(this.rtt);
    if (this.rtt[1].length) this.field("rtt").textContent = this.rtt[1][this.rtt[1].length - 1].toFixed(2);
  }

  renderRoster() {
    const roster = this.policy && this.policy.roster;
    if (!roster) return;
    this.field("officers").textContent =
      `(${roster.officers.length} officer${roster.officers.length === 1 ? "" : "s"}: ${roster.officers.map((o) => o.id).join(", ") || "none, so nothing here can be human"})`;
  }

  renderAuthority(link) {
    const short = (hash) => (hash ? hash.slice(0, 16) + "…" : "not seen yet");
    const show = (name, hash, changed) => {
      const el = this.field(name);
      el.textContent = short(hash);
      el.title = hash || "";
      el.className = changed ? "bad changed" : "";
    };
    show("policy-hash", link.policy_hash, false);
    show("roster-hash", link.roster_hash, false);
    // Red on change: what the peer shows now differs from what it showed when this page
    // opened, or the node reported a change (a peer-authority-changed event).
    if (!this.firstPeer && (link.peer_policy_hash || link.peer_roster_hash)) {
      this.firstPeer = { policy: link.peer_policy_hash, roster: link.peer_roster_hash };
    }
    const reported = new Set(this.authorityChanges.map((e) => e.what));
    const first = this.firstPeer || {};
    const policyChanged = reported.has("policy") || (first.policy && first.policy !== link.peer_policy_hash);
    const rosterChanged = reported.has("roster") || (first.roster && first.roster !== link.peer_roster_hash);
    show("peer-policy-hash", link.peer_policy_hash, policyChanged);
    show("peer-roster-hash", link.peer_roster_hash, rosterChanged);
    const note = this.field("authority-note");
    const last = this.authorityChanges[this.authorityChanges.length - 1];
    note.textContent = last
      ? `CHANGED: the peer's ${last.what} went from ${last.before.slice(0, 8)}… to ${last.after.slice(0, 8)}… (seen in its ${last.seen_in})`
      : "";
    note.className = last ? "bad" : "muted";
  }

  renderPending(answer) {
    const rows = answer.pending.slice().reverse().map((p) => {
      const tr = document.createElement("tr");
      tr.dataset.action = p.action_id;
      tr.append(cell(p.action_id), cell(p.rung), cell(p.domain_of_act, p.domain_of_act === p.domain ? "" : "bad"),
        cell(p.target || "-"), cell(String(p.officers_needed), "num"), cell(p.why));
      return tr;
    });
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = cell("nothing awaits an officer", "muted");
      td.colSpan = 6;
      tr.append(td);
      rows.push(tr);
    }
    this.field("pending").replaceChildren(...rows);
  }

  renderLink(link) {
    this.renderAuthority(link);
    this.renderWitness(link.witness);
    const el = this.field("link");
    el.textContent = link.state.toUpperCase();
    el.className = `value state-${link.state}`;
    if (link.rtt_ms != null && !this.rtt[1].length) this.field("rtt").textContent = link.rtt_ms.toFixed(2);
  }

  // The node's witnesses: the quorum, whether fail-closed is holding the gate's up caps,
  // and any split view (a witness holding another root for a size of a log), in red.
  renderWitness(status) {
    const el = this.field("witness");
    if (!status || !status.witnesses.length) { el.textContent = "witnesses: none configured"; el.className = "muted"; return; }
    const split = status.split_views[status.split_views.length - 1];
    el.dataset.splitViews = String(status.split_views.length);
    el.textContent = split
      ? `SPLIT VIEW of ${split.log}'s log at size ${split.size}, seen by witness ${split.witness}: ${split.detail}`
      : `witnesses: ${status.witnesses.join(", ")}; quorum ${status.quorum}, ${status.on_missing}` +
        (status.up_withheld ? `; gate's up caps WITHHELD: ${status.up_withheld}` : "");
    el.className = split || status.up_withheld ? "bad" : "muted";
  }

  renderMessages() {
    const kind = this.field("filter-kind").value;
    const dir = this.field("filter-dir").value;
    const shown = this.messages.filter((m) => (!kind || m.type === kind) && (!dir || m.direction === dir));
    const body = this.field("messages");
    const rows = shown.slice(-LIMITS.shown).reverse().map((m) => {
      const tr = document.createElement("tr");
      tr.dataset.kind = m.type;
      tr.append(cell(clockTime(m.at)), cell(m.direction === "sent" ? "→ out" : "← in"),
        cell(m.type), cell(String(m.seq), "num"), cell(m.verified ? "signed ✓" : "unverified", m.verified ? "ok" : "bad"));
      return tr;
    });
    body.replaceChildren(...rows);
    this.field("message-count").textContent =
      `${shown.length} shown of ${this.messages.length} kept (newest ${Math.min(shown.length, LIMITS.shown)} listed)`;
  }

  // One Query may name a whole swarm (up to 256 tracks): it is one entry, its tracks inside.
  query(event) {
    const key = clarificationKey(event);
    let entry = this.clarifications.get(key);
    if (!entry) {
      entry = { seq: event.query_seq, deadline: event.deadline_us || null, tracks: new Map(), open: false };
      this.clarifications.set(key, entry);
      while (this.clarifications.size > LIMITS.clarifications) {
        this.clarifications.delete(this.clarifications.keys().next().value);
      }
    }
    if (event.deadline_us) entry.deadline = event.deadline_us;
    return entry;
  }

  renderClarifications() {
    const now = Date.now() * 1000;
    const stateCell = (state, deadline) => {
      const shown = state === "open" && deadline
        ? `open, ${Math.max(0, (deadline - now) / 1000).toFixed(0)} ms left` : state;
      return cell(shown, state === "answered" ? "ok" : state === "open" ? "held" : "bad");
    };
    const msCell = (ms) => cell(ms == null ? "-" : ms.toFixed(1), "num clarification-ms");
    const rows = [];
    for (const [key, q] of [...this.clarifications.entries()].reverse()) {
      const tracks = [...q.tracks.entries()];
      if (tracks.length === 1) {
        const [track, t] = tracks[0];
        const tr = document.createElement("tr");
        tr.dataset.seq = q.seq;
        tr.dataset.state = t.state;
        tr.append(cell(`q${q.seq}`), cell(track), stateCell(t.state, q.deadline), msCell(t.ms));
        rows.push(tr);
        continue;
      }
      // A swarm: one row that counts its tracks by state and expands to list them.
      const counts = {};
      let slowest = null;
      for (const [, t] of tracks) {
        counts[t.state] = (counts[t.state] || 0) + 1;
        if (t.ms != null) slowest = Math.max(slowest ?? 0, t.ms);
      }
      const state = counts.open ? "open" : counts.expired || counts.not_sent ? "expired" : "answered";
      const summary = Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(", ");
      const tr = document.createElement("tr");
      tr.dataset.seq = q.seq;
      tr.dataset.state = state;
      tr.dataset.swarm = String(tracks.length);
      tr.dataset.key = key;
      tr.className = "swarm";
      tr.title = q.open ? "click to fold" : "click to list its tracks";
      tr.append(cell(`q${q.seq}`), cell(`${q.open ? "\u25be" : "\u25b8"} swarm of ${tracks.length} tracks`),
        cell(summary, state === "answered" ? "ok" : state === "open" ? "held" : "bad"), msCell(slowest));
      rows.push(tr);
      if (!q.open) continue;
      for (const [track, t] of tracks.slice(0, LIMITS.swarmShown)) {
        const row = document.createElement("tr");
        row.className = "swarm-track";
        row.dataset.state = t.state;
        row.append(cell(""), cell(track), stateCell(t.state, q.deadline), msCell(t.ms));
        rows.push(row);
      }
      if (tracks.length > LIMITS.swarmShown) {
        const more = document.createElement("tr");
        more.className = "swarm-track";
        more.append(cell(""), cell(`... and ${tracks.length - LIMITS.swarmShown} more`, "muted"), cell(""), cell(""));
        rows.push(more);
      }
    }
    this.field("clarifications").replaceChildren(...rows);
    const now_ms = Date.now() * 1000;
    const cleared = (target) => [...this.clarifications.values()].some((q) => {
      const t = q.tracks.get(target);
      return t !== undefined && t.state !== "open";
    });
    const holds = this.decisions.filter((d) => d.verdict === "hold" && d.until_us && d.until_us > now_ms
      && !cleared(d.target));
    const holdsEl = this.field("holds");
    holdsEl.textContent = String(holds.length);
    holdsEl.className = "value " + (holds.length ? "held" : "calm");
    const kineticEl = this.field("kinetic");
    kineticEl.textContent = this.kinetic ? `${this.kinetic} act${this.kinetic > 1 ? "s" : ""}` : "none";
    kineticEl.className = "value " + (this.kinetic ? "kinetic" : "calm");
  }

  renderDecisions() {
    const rows = this.decisions.slice().reverse().map((d) => {
      const tr = document.createElement("tr");
      tr.dataset.verdict = d.verdict;
      tr.append(cell(d.action), cell(d.rung), cell(d.verdict.toUpperCase(),
        d.verdict === "allow" ? "ok" : d.verdict === "hold" ? "held" : "bad"), cell(d.rule), cell(d.reason));
      return tr;
    });
    this.field("decisions").replaceChildren(...rows);
  }

  renderLadder() {
    if (!this.policy) return;
    const rungs = this.policy.ladder.map((r) => {
      const div = document.createElement("div");
      div.className = "rung" + (r.name === this.currentRung ? " current" : "") + (r.kinetic ? " kin" : "");
      div.dataset.rung = r.name;
      div.append(Object.assign(document.createElement("span"), { textContent: r.name }),
        Object.assign(document.createElement("span"), { textContent: String(r.score), className: "muted" }));
      if (r.name === this.currentRung) div.setAttribute("aria-current", "step");
      return div;
    });
    this.field("ladder").replaceChildren(...rungs);
  }

  async renderLog() {
    const log = await this.get("/v1/log");
    this.logSize = log.size;
    this.field("log").textContent = `${log.size} entries, root ${log.root.slice(0, 16)}…`;
    const checkpoints = await this.get("/v1/log/checkpoints");
    const box = this.field("checkpoints");
    box.replaceChildren(document.createTextNode("latest checkpoints: "));
    for (const [side, list] of Object.entries(checkpoints)) {
      const last = list[list.length - 1];
      const span = document.createElement("span");
      span.dataset.side = side;
      if (!last) {
        span.textContent = `${side} none yet; `;
      } else {
        // "own": ours, sealed in our log; otherwise whether its consistency proof links it
        // to the previous one this node holds (a failure means the peer showed two histories).
        const verdict = { own: "ours", first: "first seen", consistent: "consistent ✓",
          unproven: "no proof", INCONSISTENT: "INCONSISTENT ✗" }[last.consistency] || last.consistency;
        span.textContent = `${side} size ${last.size}, root ${last.root.slice(0, 12)}…, ${verdict}${witnessed(last)}; `;
        span.dataset.consistency = last.consistency;
        span.className = last.consistency === "INCONSISTENT" ? "bad" : last.consistency === "consistent" ? "ok" : "";
        if (last.quorum) span.dataset.quorum = last.quorum;
        if (last.split_view || last.quorum === "not-met") span.className = "bad";
      }
      box.append(span);
    }
  }

  async verify() {
    const out = this.field("proof-result");
    const index = Number(this.field("proof-index").value);
    try {
      const proof = await this.get(`/v1/log/proof/${index}`);
      const root = await Merkle.rootFromInclusionProof(proof.leaf_hash, proof.index, proof.size, proof.proof);
      const good = root === proof.root;
      out.textContent = good
        ? `entry ${index} is in the tree of ${proof.size} (root ${root.slice(0, 12)}…): verified here`
        : `proof does not match: got ${root.slice(0, 12)}…, node says ${proof.root.slice(0, 12)}…`;
      out.className = good ? "ok" : "bad";
      out.dataset.verified = String(good);
    } catch (error) {
      out.textContent = String(error.message || error);
      out.className = "bad";
      out.dataset.verified = "false";
    }
  }
}

// A checkpoint's witness cosignatures and the quorum verdict, as the node judged them.
function witnessed(checkpoint) {
  if (!checkpoint.quorum) return "";
  const names = (checkpoint.cosigners || []).join(", ") || "none";
  const verdict = { met: "quorum met ✓", "not-met": "quorum NOT met ✗", pending: "asking witnesses…" }[checkpoint.quorum];
  return `, cosigned by ${names}, ${verdict}${checkpoint.split_view ? ", SPLIT VIEW ✗" : ""}`;
}

// Not signed in to this node: show the sign-in form, and no data at all.
function showSignIn() {
  const signin = document.getElementById("signin");
  signin.querySelector('input[name="next"]').value = location.pathname + location.search;
  signin.hidden = false;
  document.body.dataset.signedIn = "false";
}

async function signedIn() {
  const response = await fetch("/v1/link", { credentials: "same-origin" });
  return response.status !== 401;
}

async function main() {
  setInterval(() => { document.getElementById("clock").textContent = new Date().toLocaleTimeString([], { hour12: false }); }, 500);
  const bases = nodesFromUrl();
  if (bases.includes(location.origin) && !(await signedIn())) {
    showSignIn();
    document.body.dataset.ready = "true";
    return;
  }
  const container = document.getElementById("nodes");
  const template = document.getElementById("node-template");
  const views = bases.map((base) => {
    const panel = template.content.firstElementChild.cloneNode(true);
    container.append(panel);
    return new NodeView(base, panel);
  });
  window.consoleViews = views;
  await Promise.all(views.map((v) => v.start().catch((error) => {
    if (error instanceof SignInNeeded) {
      // Another node on this machine, not signed in: its console has its own sign-in.
      const heading = Object.assign(document.createElement("h2"), { textContent: `${v.base}: not signed in to this node; ` });
      heading.append(Object.assign(document.createElement("a"), { href: `${v.base}/console/`, textContent: "sign in there" }));
      v.root.replaceChildren(heading);
      v.root.dataset.signedIn = "false";
      return;
    }
    v.field("link").textContent = "no node";
    v.field("link").className = "value state-down";
    console.error(error);
  })));
  if (bases.includes(location.origin)) {
    document.getElementById("signout").hidden = false;
    document.body.dataset.signedIn = "true";
  }
  document.body.dataset.ready = "true";
}

main();
