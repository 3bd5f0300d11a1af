// motpipe dashboard: small helpers that poll the JSON API and fill the server-rendered pages.
// Text always goes in through textContent (never innerHTML with data), so names cannot inject markup.
"use strict";
const motpipe = (() => {
  const SUMMARY = ["HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1", "IDSW", "Frag", "MT", "ML"];
  const GROUP = ["precision", "recall", "f1_score", "mota", "avg_iou", "fragmentation_ratio"];
  const LEADER = ["HOTA", "DetA", "AssA", "IDF1", "MOTA", "IDSW"];

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value; else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }
  const fmt = v => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(4)) : (v ?? ""));
  const badge = state => el("span", { class: `state ${state}` }, state);
  // a plot opens at full size on click (shown scaled to its column)
  const fullSize = img => el("a", { href: img.getAttribute("src"), target: "_blank", title: "open full size" }, img);

  // the session's CSRF token (the page holds it; a page of another origin cannot read it)
  const CSRF = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  async function api(url, options = {}) {
    const headers = { ...(options.headers || {}) };
    if (options.method && options.method !== "GET") headers["X-CSRF-Token"] = CSRF;
    const answer = await fetch(url, { credentials: "same-origin", ...options, headers });
    const type = answer.headers.get("content-type") || "";
    const body = type.includes("json") ? await answer.json() : await answer.text();
    if (!answer.ok) throw new Error((body && body.detail) || `${answer.status} ${answer.statusText}`);
    return body;
  }

  function poll(fn, ms = 2000) {
    let stopped = false;
    const tick = async () => {
      if (stopped) return;
      let again = true;
      try { again = (await fn()) !== false; } catch (err) { again = true; }
      if (again && !stopped) setTimeout(tick, ms);
    };
    tick();
    return () => { stopped = true; };
  }

  function say(form, text, isError = false) {
    const status = form.querySelector(".status");
    status.replaceChildren(text);  // text or a node (a link to what was made)
    status.className = `status${isError ? " error" : ""}`;
  }

  function table(head, rows) {
    return el("div", { class: "scroll" }, el("table", {},
      el("thead", {}, el("tr", {}, ...head.map(h => el("th", {}, h)))),
      el("tbody", {}, ...rows.map(r => el("tr", {}, ...r.map(c => el("td", {}, c)))))));
  }

  function stageCell(stage) {
    const cell = el("td", { "data-stage": stage.name }, badge(stage.state));
    if (stage.progress && stage.progress.total) cell.append(" ", el("small", {}, `${stage.progress.done}/${stage.progress.total}`));
    return cell;
  }

  // The runs page: the server drew the page; this keeps its rows' states and metrics current by asking
  // `GET /runs` with the same filters, sort and cursor (the address's query) every few seconds.
  function liveRuns(tableNode) {
    const body = tableNode.querySelector("tbody");
    const query = new URLSearchParams(window.location.search);
    const ball = [...tableNode.querySelectorAll("thead th")].some(th => th.textContent === "ball HOTA");
    const num = v => el("td", { class: "num" }, typeof v === "number" ? v.toFixed(4) : "");
    const chip = tag => { const q = new URLSearchParams(query); q.set("tag", tag); q.delete("cursor"); return el("a", { class: "chip", href: `/ui?${q}` }, tag); };
    poll(async () => {
      const page = await api(`/runs?${query}`);
      document.getElementById("total").textContent = `${page.total} ${page.total === 1 ? "run" : "runs"}`;
      if (!page.runs.length) return true;  // the server's empty-state row says why
      body.replaceChildren(...page.runs.map(run => {
        const first = el("td", {}, el("a", { href: `/ui/runs/${run.run}` }, run.name || run.run));
        if (run.parent) first.append(" ", el("small", { class: "muted" }, "child"));
        for (const tag of run.tags) first.append(" ", chip(tag));
        const row = el("tr", { "data-run": run.run }, first, el("td", {}, run.video), el("td", {}, run.detector || ""),
          el("td", {}, run.tracker || ""), num(run.HOTA), num(run.IDF1), num(run.MOTA));
        if (ball) row.append(num(run.HOTA_ball));
        row.append(el("td", { "data-state": run.state }, badge(run.state)), el("td", {}, run.created.replace("T", " ").slice(0, 19)));
        return row;
      }));
    }, 3000);
  }

  function uploadForm(form) {
    form.addEventListener("submit", async event => {
      event.preventDefault();
      const data = new FormData(form);
      for (const [key, value] of [...data.entries()]) if (value === "") data.delete(key);
      say(form, "uploading…");
      try {
        const answer = await api("/detect", { method: "POST", body: data });
        say(form, `run ${answer.run} created, detecting…`);
        window.location.assign(`/ui/runs/${answer.run}`);
      } catch (err) { say(form, err.message, true); }
    });
  }

  function metricsTables(report) {
    const parts = [];
    const standard = SUMMARY.map(k => [k, fmt(report.trackeval[k])]);
    const group = GROUP.map(k => [k, fmt(report.framewise[k])]).concat(Object.entries(report.losses).map(([k, v]) => [k, fmt(v)]));
    parts.push(el("p", { class: "muted" }, `IoU ${report.iou_threshold}, frames: ${report.frames || "all"}`));
    parts.push(el("div", { class: "grid2" },
      el("div", {}, el("h3", {}, "Standard (TrackEval) — report these"), table(["metric", "value"], standard)),
      el("div", {}, el("h3", {}, "The group's framewise block and losses"), table(["metric", "value"], group))));
    if (report.per_class) {
      const names = Object.keys(report.per_class);
      const rows = ["HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW"].map(k => [k, ...names.map(n => fmt(report.per_class[n].trackeval[k]))]);
      rows.push(["recall (framewise)", ...names.map(n => fmt(report.per_class[n].framewise.recall))]);
      parts.push(el("h3", {}, "Per class"), table(["metric", ...names], rows));
    }
    for (const note of report.notes || []) parts.push(el("p", { class: "muted" }, `note: ${note}`));
    return parts;
  }

  function runPage(run) {
    const stages = document.getElementById("stages");
    const metrics = document.getElementById("metrics");
    const plots = document.getElementById("plots");
    const annotated = document.getElementById("annotated");
    let shownEval = null;
    async function loadMetrics() {
      const query = annotated.checked ? "?annotated_only=true" : "";
      try {
        const report = await api(`/eval/${run}${query}`);
        metrics.replaceChildren(...metricsTables(report));
        if (!plots.childElementCount) {
          for (const name of ["metrics_overview", "dashboard", "per_frame", "hota_alpha"]) {
            plots.append(fullSize(el("img", { src: `/eval/${run}/plots/${name}.png`, alt: name, loading: "lazy" })));
          }
        }
      } catch (err) { metrics.replaceChildren(el("p", { class: "muted" }, err.message)); }
    }
    annotated.addEventListener("change", loadMetrics);
    poll(async () => {
      const record = await api(`/runs/${run}`);
      for (const row of stages.querySelectorAll("tbody tr")) {
        const s = record.stages[row.dataset.stage] || { state: "pending", progress: {} };
        row.children[1].replaceChildren(badge(s.state));
        row.children[2].textContent = s.progress && s.progress.total ? `${s.progress.done}/${s.progress.total}` : "";
        row.children[3].textContent = s.error || "";
      }
      document.getElementById("children").replaceChildren(...(record.children.length ? ["Runs made from it: ",
        ...record.children.flatMap(child => [el("a", { href: `/ui/runs/${child}` }, el("code", {}, child)), " "])] : []));
      const notes = Object.entries(record.stages).flatMap(([name, s]) => (s.notes || []).map(note =>
        el("li", { class: note.startsWith("warning") ? "warning" : "" }, `${name}: ${note}`)));
      document.getElementById("notes").replaceChildren(...notes);
      // scored once tracks exist (the ground truth may be the run's own or read from its parent; without one,
      // the metrics box says so); again when the tracks, the ground truth or the eval stage change
      const track = record.stages.track || {}, evaluation = record.stages.eval || {};
      const gt = "gt.txt" in record.artifacts || "gt.json" in record.artifacts || record.inputs.gt || evaluation.state === "succeeded";
      const key = `${track.finished}|${evaluation.state}|${Object.keys(record.artifacts).join(",")}`;
      if (track.state === "succeeded" && gt && key !== shownEval) { shownEval = key; plots.replaceChildren(); await loadMetrics(); }
      return true;  // the page stays current while it is open (children, ground truth, a stage restarted)
    }, 2000);
    loadDoctor(run);
    const video = document.getElementById("overlay");
    document.getElementById("overlay-button").addEventListener("click", () => { video.src = `/runs/${run}/overlay.mp4`; video.load(); });
    const trackForm = document.getElementById("track");
    const knobSets = trackForm.querySelectorAll("fieldset.knobs");
    const showKnobs = () => knobSets.forEach(set => { set.hidden = set.dataset.tracker !== trackForm.tracker.value; });
    trackForm.tracker.addEventListener("change", showKnobs);
    showKnobs();
    postJson(trackForm, "/track", data => {
      const body = { run, tracker: data.tracker, options: {} };
      if (data.weights) body.weights = data.weights;
      const set = trackForm.querySelector(`fieldset.knobs[data-tracker="${data.tracker}"]`);
      for (const input of set.querySelectorAll("[data-knob]")) {
        if (input.value === "") continue;
        const value = input.value === "true" ? true : input.value === "false" ? false : Number(input.value);
        if (input.dataset.knob === "top") body.score_threshold = value; else body.options[input.name] = value;
      }
      return body;
    }, answer => answer.run === run ? "tracking queued" : follow(trackForm, answer.run, "tracking again as a new run"));
    postJson(document.getElementById("detect-again"), `/runs/${run}/detect`, data => {
      const body = { detector: data.detector };
      if (data.weights) body.weights = data.weights;
      if (data.score_threshold) body.score_threshold = Number(data.score_threshold);
      return body;
    }, answer => follow(document.getElementById("detect-again"), answer.run, "detecting again as a new run"));
    notebook(run);
    const gtForm = document.getElementById("gt");
    gtForm.addEventListener("submit", async event => {
      event.preventDefault();
      try {
        const answer = await api(`/runs/${run}/gt`, { method: "POST", body: new FormData(gtForm) });
        say(gtForm, `${answer.rows} boxes, ${answer.tracks} tracks stored (${answer.format})`);
        shownEval = null;
        loadDoctor(run);
      } catch (err) { say(gtForm, err.message, true); }
    });
    const labelForm = document.getElementById("label");
    const picks = document.getElementById("label-picks");
    // the run's label stage: under way, failed with its reason, or what it did (and why each frame was picked)
    const followLabel = () => poll(async () => {
      const s = (await api(`/runs/${run}`)).stages.label;
      if (!s) return false;
      const action = s.params.action === "pull" ? "pull" : "push";
      if (s.state === "failed") { say(labelForm, `${action} failed: ${s.error || ""}`, true); return false; }
      if (s.state !== "succeeded") {
        const p = s.progress || {};
        say(labelForm, `${action} ${s.state}…${p.total ? ` (frame ${p.done} of ${p.total} decoded)` : ""}`);
        return true;
      }
      const o = s.params.outcome || {};
      if (action === "push") {
        const fewer = (o.picks || []).length < s.params.frames
          ? ` — ${(o.picks || []).length} of ${s.params.frames} frames picked: the clip and the ${s.params.min_gap}-frame gap allow no more` : "";
        say(labelForm, `project ${o.project}: ${o.tasks} tasks (${o.added} added, ${o.already} already there)${fewer}`);
        picks.replaceChildren(...(o.picks || []).map(p => el("li", {}, el("b", {}, `frame ${p.frame}`), ` ${p.reason}`)));
        if (o.project && !labelForm.project.value) labelForm.project.value = o.project;
      } else {
        const boxes = Object.entries(o.boxes || {}).map(([name, n]) => `${n} ${name}`).join(", ");
        say(labelForm, o.changed ? `${o.frames_added} frames added, ${o.frames_replaced} replaced (${boxes}) in the ground truth`
          : "nothing new to pull (no submitted annotation, or pulled already): nothing changed");
      }
      return false;
    }, 1500);
    followLabel();
    postJson(labelForm, `/runs/${run}/label`, data => {
      const body = { frames: Number(data.frames), pick: data.pick };
      if (data.project) body.project = data.project;
      return body;
    }, () => { picks.replaceChildren(); followLabel(); return "sending frames…"; });
    document.getElementById("label-pull").addEventListener("click", async () => {
      if (!labelForm.project.value) { say(labelForm, "give the project (id or title) to pull from", true); return; }
      try {
        await api(`/runs/${run}/label/pull`, { method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ project: labelForm.project.value }) });
        say(labelForm, "pulling…");
        followLabel();
      } catch (err) { say(labelForm, err.message, true); }
    });
    postJson(document.getElementById("sweep"), "/sweeps", data => {
      const body = { run, tracker: data.tracker, grid: JSON.parse(data.grid) };
      if (data.weights) body.weights = data.weights.split(",").map(s => s.trim()).filter(Boolean);
      return body;
    }, answer => { window.location.assign(`/ui/sweeps/${answer.sweep}`); return "sweep started"; });
  }

  // What a form made (a child run) and how it goes: the link at once, then its stages, then its result.
  function follow(form, child, what) {
    const link = () => el("a", { href: `/ui/runs/${child}` }, child);
    poll(async () => {
      const record = await api(`/runs/${child}`);
      const stages = Object.entries(record.stages);
      const failed = stages.find(([, s]) => s.state === "failed");
      const busy = stages.find(([, s]) => s.state === "running" || (s.state === "pending" && s.task));
      if (failed) { say(form, el("span", {}, `${what}: `, link(), ` — ${failed[0]} failed: ${failed[1].error || ""}`), true); return false; }
      if (busy) {
        const p = busy[1].progress || {};
        say(form, el("span", {}, `${what}: `, link(), ` — ${busy[0]} ${busy[1].state}${p.total ? ` ${p.done}/${p.total}` : ""}`));
        return true;
      }
      let result = "done";
      if ((record.stages.track || {}).state === "succeeded") {
        try {  // scored with its own ground truth or the one it reads from its parent
          const report = await api(`/eval/${child}`);
          result = `HOTA ${fmt(report.trackeval.HOTA)}, IDF1 ${fmt(report.trackeval.IDF1)}`;
        } catch (err) { result = `tracked; not scored: ${err.message}`; }
      } else if ((record.stages.detect || {}).state === "succeeded") result = "detected: track it from its page";
      say(form, el("span", {}, `${what}: `, link(), ` — ${result}`));
      return false;
    }, 1500);
    return el("span", {}, `${what}: `, link());
  }

  // The run's name, tags and note (PATCH /runs/{run}) and its deletion (DELETE, refused while a stage runs).
  function notebook(run) {
    const form = document.getElementById("edit");
    form.addEventListener("submit", async event => {
      event.preventDefault();
      const data = new FormData(form);
      const body = { name: data.get("name"), note: data.get("note"),
        tags: data.get("tags").split(",").map(t => t.trim()).filter(Boolean) };
      try {
        const record = await api(`/runs/${run}`, { method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
        document.getElementById("run-name").textContent = record.name || "Run";
        document.getElementById("tags").replaceChildren(...record.tags.map(tag =>
          el("a", { class: "chip", href: `/ui?tag=${encodeURIComponent(tag)}` }, tag)));
        say(form, "saved");
      } catch (err) { say(form, err.message, true); }
    });
    document.getElementById("delete").addEventListener("click", async () => {
      if (!window.confirm("Delete this run and its files? Runs made from it keep working.")) return;
      try {
        await api(`/runs/${run}`, { method: "DELETE" });
        window.location.assign("/ui");
      } catch (err) { say(form, err.message, true); }
    });
  }

  async function loadDoctor(run) {
    const box = document.getElementById("doctor");
    try {
      const report = await api(`/runs/${run}/doctor`);
      box.replaceChildren(report.findings.length
        ? table(["severity", "code", "message", "fix"], report.findings.map(f => [badge(f.severity), f.code, f.message, f.fix]))
        : el("p", {}, "No findings: the inputs look consistent."));
    } catch (err) { box.replaceChildren(el("p", { class: "muted" }, err.message)); }
  }

  function postJson(form, url, build, done) {
    form.addEventListener("submit", async event => {
      event.preventDefault();
      let body;
      try { body = build(Object.fromEntries(new FormData(form).entries())); } catch (err) { say(form, `not valid: ${err.message}`, true); return; }
      try {
        const answer = await api(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
        say(form, done(answer));
      } catch (err) { say(form, err.message, true); }
    });
  }

  function sweepPage(initial) {
    const body = document.querySelector("#leaderboard tbody");
    const plots = document.getElementById("sweep-plots");
    const render = sweep => {
      document.getElementById("sweep-state").replaceWith(Object.assign(badge(sweep.state), { id: "sweep-state" }));
      document.getElementById("sweep-progress").textContent = `${sweep.progress.done}/${sweep.progress.total}`;
      body.replaceChildren(...sweep.leaderboard.map((row, i) => el("tr", { "data-run": row.run },
        el("td", {}, i + 1), el("td", {}, el("a", { href: `/ui/runs/${row.run}` }, el("code", {}, row.run))),
        el("td", {}, Object.entries(row.params).map(([k, v]) => `${k}=${v}`).join(", ")),
        el("td", {}, badge(row.state), row.error ? ` ${row.error}` : ""),
        ...LEADER.map(k => el("td", {}, fmt(row[k]))),
        el("td", {}, fmt(((row.per_class || {}).ball || {}).HOTA)))));
      const finished = sweep.state === "succeeded" || sweep.state === "failed";
      if (finished && !plots.childElementCount) {
        for (const name of ["ranked", "heatmap"]) {
          const img = el("img", { src: `/sweeps/${sweep.sweep}/plots/${name}.png`, alt: `${name} plot` });
          const link = fullSize(img);
          img.addEventListener("error", () => link.remove());
          plots.append(link);
        }
      }
      return !finished;
    };
    render(initial);
    poll(async () => render(await api(`/sweeps/${initial.sweep}`)));
  }

  // Lower is better for these (errors, switches, losses); neutral counts are shown without a verdict.
  const LOWER = new Set(["IDSW", "Frag", "ML", "CLR_FN", "CLR_FP", "IDFN", "IDFP", "fragmentation_ratio", "id_switches",
    "false_positives", "false_negatives", "fp", "fn"]);
  const NEUTRAL = new Set(["Dets", "GT_Dets", "IDs", "GT_IDs", "PT", "CLR_Frames", "unique_pred_ids", "avg_pred_per_frame",
    "total_gt", "total_pred", "frames"]);
  const lowerIsBetter = (block, key) => block === "losses" || key.endsWith("_loss") || LOWER.has(key);

  // 2 to 6 runs: configurations side by side, every metric with its difference to the first run (better or
  // worse marked by the metric's direction), per class where present, and the runs' plots side by side.
  async function comparePage(box) {
    const ids = (box.dataset.runs || "").split(",").filter(Boolean);
    if (ids.length < 2) return;
    box.replaceChildren(el("p", { class: "muted" }, "loading…"));
    let records, reports;
    try {
      records = await Promise.all(ids.map(id => api(`/runs/${id}`)));
      reports = await Promise.all(ids.map(id => api(`/eval/${id}`).catch(err => ({ error: err.message }))));
    } catch (err) { box.replaceChildren(el("p", { class: "error" }, err.message)); return; }
    const head = ["", ...records.map((r, i) => el("a", { href: `/ui/runs/${r.run}` }, `${i === 0 ? "reference: " : ""}${r.name || r.run}`))];
    const param = (r, stage, key) => { const v = ((r.stages[stage] || {}).params || {})[key]; return v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v); };
    const config = [["video", r => r.inputs.upload || r.inputs.path || ""], ["detector", r => param(r, "detect", "detector")],
      ["detector weights", r => param(r, "detect", "weights").split("/").pop()], ["detection score_threshold", r => param(r, "detect", "score_threshold")],
      ["tracker", r => param(r, "track", "tracker")], ["tracker weights", r => param(r, "track", "weights").split("/").pop()],
      ["tracker score_threshold", r => param(r, "track", "score_threshold")], ["tracker options", r => param(r, "track", "options")]];
    const parts = [el("h2", {}, "Configuration"), table(head.map(String), config.map(([name, get]) => [name, ...records.map(r => get(r) || "—")]))];
    parts[1].querySelectorAll("th").forEach((th, i) => { if (i > 0) th.replaceChildren(head[i]); });
    const cell = (block, key, values, i) => {
      const v = values[i];
      const td = el("td", { class: "num" }, fmt(v));
      if (i === 0 || typeof v !== "number" || typeof values[0] !== "number") return td;
      const diff = v - values[0];
      if (diff === 0 || NEUTRAL.has(key)) { td.append(el("small", { class: "muted" }, diff === 0 ? " =" : ` ${diff > 0 ? "+" : ""}${fmt(diff)}`)); return td; }
      const better = lowerIsBetter(block, key) ? diff < 0 : diff > 0;
      td.append(" ", el("small", { class: better ? "better" : "worse", title: better ? "better than the reference" : "worse than the reference" },
        `${diff > 0 ? "+" : ""}${fmt(diff)} ${better ? "▲" : "▼"}`));
      return td;
    };
    const metricTable = (title, pick) => {
      const blocks = ["trackeval", "framewise", "losses"];
      const rows = [];
      for (const block of blocks) {
        const keys = [...new Set(reports.flatMap(rep => Object.keys((pick(rep) || {})[block] || {})))]
          .filter(k => reports.some(rep => typeof ((pick(rep) || {})[block] || {})[k] === "number"));
        for (const key of keys) {
          const values = reports.map(rep => ((pick(rep) || {})[block] || {})[key]);
          rows.push(el("tr", { "data-metric": `${block}.${key}` }, el("td", {}, key), ...values.map((_, i) => cell(block, key, values, i))));
        }
      }
      if (!rows.length) return [];
      return [el("h2", {}, title), el("div", { class: "scroll" }, el("table", { class: "compare" },
        el("thead", {}, el("tr", {}, ...head.map(h => el("th", {}, h instanceof Node ? h.cloneNode(true) : h)))), el("tbody", {}, ...rows)))];
    };
    const missing = reports.map((rep, i) => rep.error ? `${records[i].name || records[i].run}: ${rep.error}` : null).filter(Boolean);
    for (const text of missing) parts.push(el("p", { class: "error" }, text));
    parts.push(...metricTable("Metrics (difference to the reference)", rep => rep));
    const classes = [...new Set(reports.flatMap(rep => Object.keys(rep.per_class || {})))];
    for (const name of classes) {  // per class: folded, the all-class table above is what is read first
      const [title, body] = metricTable(`Metrics: ${name}`, rep => (rep.per_class || {})[name]);
      if (body) parts.push(el("details", { class: "per-class", "data-class": name }, el("summary", {}, title.textContent), body));
    }
    parts.push(el("h2", {}, "Plots"));
    for (const plot of ["metrics_overview", "per_frame"]) {
      parts.push(el("div", { class: "compare-plots", style: `grid-template-columns: repeat(${ids.length}, 1fr)` },
        ...ids.map((id, i) => reports[i].error ? el("p", { class: "muted" }, "no metrics") : fullSize(el("img", { src: `/eval/${id}/plots/${plot}.png`, alt: `${plot} of ${records[i].name || id}` })))));
    }
    box.replaceChildren(...parts);
  }

  // The review page: the run's video with boxes drawn on a canvas from `/runs/{run}/boxes` (fetched 200
  // frames at a time), error events from `/eval/{run}/events` on a timeline, jumps to the next event of a
  // kind. `#review[data-frame]` is the frame shown; `window.reviewState.drawn` what is drawn on it.
  function reviewPage(root) {
    // One or two panes (runs of one video), one frame for both: every seek moves every pane's video and the
    // boxes are drawn once all of them show the frame; the timeline holds each pane's events.
    const fps = Number(root.dataset.fps) || 25, total = Math.max(1, Number(root.dataset.frames) || 1);
    const width = Number(root.dataset.width) || 1280, height = Number(root.dataset.height) || 720;
    const timeline = document.getElementById("timeline");
    const KIND_COLOUR = { fn: "#d92d20", fp: "#f79009", idsw: "#c11574", frag: "#0e9384" };
    const KINDS = ["fn", "fp", "idsw", "frag"], KIND_NAMES = ["miss", "false pos.", "ID switch", "fragment"];
    const panes = [...root.querySelectorAll(".pane")].map((figure, index) => ({
      run: figure.dataset.run, threshold: Number(figure.dataset.threshold), video: figure.querySelector("video"),
      canvas: figure.querySelector("canvas"), counts: document.getElementById(index ? "event-counts-b" : "event-counts"),
      windows: new Map(), events: [], byFrame: new Map(), drawn: [], shows: 1,
    }));
    const state = { frame: 1, target: 1, playable: true, panes, get drawn() { return panes[0].drawn; }, get events() { return panes.flatMap(p => p.events); } };
    window.reviewState = state;
    const on = name => root.querySelector(`[data-layer="${name}"]`).checked;
    const classOn = cls => { const box = root.querySelector(`[data-class="${cls}"]`); return box ? box.checked : true; };
    const idColour = id => `hsl(${(Math.abs(id) * 137.508) % 360}, 85%, 55%)`;

    async function windowOf(pane, frame) {
      const start = Math.floor((frame - 1) / 200) * 200 + 1;
      if (!pane.windows.has(start)) pane.windows.set(start, api(`/runs/${pane.run}/boxes?from=${start}&to=${start + 199}`));
      return (await pane.windows.get(start)).frames[String(frame)] || {};
    }

    function label(ctx, text, x, y, colour) {
      ctx.font = "bold 13px system-ui, sans-serif";
      const w = ctx.measureText(text).width + 6;
      ctx.fillStyle = "rgba(0, 0, 0, 0.75)";  // a dark plate: readable on sand and on indoor floors
      ctx.fillRect(x, Math.max(0, y - 16), w, 16);
      ctx.fillStyle = colour;
      ctx.fillText(text, x + 3, Math.max(12, y - 4));
    }

    async function drawPane(pane) {
      const frame = state.frame, boxes = await windowOf(pane, frame);
      if (frame !== state.frame) return;  // a newer frame is being drawn
      const canvas = pane.canvas, rect = canvas.getBoundingClientRect();
      canvas.width = Math.round(rect.width); canvas.height = Math.round(rect.height);
      const sx = canvas.width / width, sy = canvas.height / height;
      const ctx = canvas.getContext("2d");
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      if (!state.playable) { ctx.fillStyle = "#2b2f36"; ctx.fillRect(0, 0, canvas.width, canvas.height); }
      const drawn = [];
      const rectOf = b => [b[2] * sx, b[3] * sy, b[4] * sx, b[5] * sy];
      if (on("det")) for (const b of boxes.det || []) {
        if (!classOn(b[1])) continue;
        ctx.setLineDash(b[0] < pane.threshold ? [4, 3] : []); ctx.lineWidth = 1.5; ctx.strokeStyle = "#f5c400";
        ctx.strokeRect(...rectOf(b)); drawn.push({ layer: "det", score: b[0], cls: b[1], box: b.slice(2) });
      }
      ctx.setLineDash([]);
      if (on("gt")) for (const b of boxes.gt || []) {
        if (!classOn(b[1])) continue;
        ctx.lineWidth = 3; ctx.strokeStyle = "#111"; ctx.strokeRect(...rectOf(b));
        ctx.lineWidth = 1.5; ctx.strokeStyle = "#fff"; ctx.strokeRect(...rectOf(b));
        drawn.push({ layer: "gt", id: b[0], cls: b[1], box: b.slice(2) });
      }
      if (on("tracks")) for (const b of boxes.tracks || []) {
        if (!classOn(b[1])) continue;
        const colour = idColour(b[0]); const [x, y, w, h] = rectOf(b);
        ctx.lineWidth = 2.5; ctx.strokeStyle = colour; ctx.strokeRect(x, y, w, h);
        label(ctx, `id ${b[0]}`, x, y, colour);
        drawn.push({ layer: "tracks", id: b[0], cls: b[1], box: b.slice(2) });
      }
      if (on("errors")) for (const e of pane.byFrame.get(frame) || []) {
        if (!classOn(e.class)) continue;
        const [x, y, w, h] = rectOf([0, 0, ...e.box]);
        ctx.lineWidth = 3; ctx.strokeStyle = KIND_COLOUR[e.kind]; ctx.setLineDash(e.kind === "fp" ? [6, 4] : []);
        ctx.strokeRect(x - 3, y - 3, w + 6, h + 6); ctx.setLineDash([]);
        const text = e.kind === "idsw" ? `ID switch ${e.prev_pred_id}→${e.pred_id}` : e.kind === "fn" ? "miss" : e.kind === "fp" ? "false pos." : "fragment";
        label(ctx, text, x, y + h + 20, KIND_COLOUR[e.kind]);
        drawn.push({ layer: "errors", kind: e.kind, gt_id: e.gt_id, pred_id: e.pred_id, box: e.box });
      }
      pane.drawn = drawn;
      pane.shows = frame;
    }

    function draw() { panes.forEach(drawPane); drawTimeline(); }

    function drawTimeline() {
      const w = timeline.width = Math.round(timeline.getBoundingClientRect().width), h = timeline.height;
      const ctx = timeline.getContext("2d");
      ctx.clearRect(0, 0, w, h);
      const rows = KINDS.length * panes.length, row = (h - 4 * panes.length) / rows;
      const top = (p, k) => 4 * (p + 1) + (p * KINDS.length + k) * row;
      const x = frame => (total === 1 ? 0 : (frame - 1) / (total - 1)) * (w - 2) + 1;
      panes.forEach((pane, p) => {
        KINDS.forEach((kind, k) => { ctx.fillStyle = "#f2f4f7"; ctx.fillRect(0, top(p, k), w, row - 1); });
        for (const e of pane.events) {
          ctx.fillStyle = KIND_COLOUR[e.kind];
          ctx.fillRect(x(e.frame), top(p, KINDS.indexOf(e.kind)), Math.max(1, w / total), row - 1);
        }
        ctx.font = "10px system-ui, sans-serif";  // row names on a light plate, over the events
        KIND_NAMES.forEach((name, k) => {
          const text = panes.length > 1 ? `${"AB"[p]} ${name}` : name;
          ctx.fillStyle = "rgba(255, 255, 255, 0.85)"; ctx.fillRect(w - 70, top(p, k), 70, row - 1);
          ctx.fillStyle = "#344054"; ctx.fillText(text, w - 67, top(p, k) + row - 4);
        });
      });
      ctx.fillStyle = "#101828"; ctx.fillRect(x(state.frame) - 1, 0, 2, h);
    }

    function show(frame) {  // every video shows `frame` now: record it, draw its boxes
      state.frame = frame;
      root.dataset.frame = String(frame);
      document.getElementById("frame-number").textContent = frame;
      draw();
    }

    function seek(frame) {
      frame = Math.min(total, Math.max(1, Math.round(frame)));
      state.target = frame;
      if (!state.playable) { show(frame); return; }
      for (const pane of panes) { pane.seeked = false; pane.video.currentTime = (frame - 0.5) / fps; }  // mid-frame: no rounding lands on a neighbour
    }
    for (const pane of panes) {
      pane.video.addEventListener("seeked", () => { pane.seeked = true; if (panes.every(p => p.seeked)) show(state.target); });
      pane.video.addEventListener("error", () => { state.playable = false; show(state.target); });
    }
    const lead = panes[0].video;
    const playing = () => {
      if (lead.paused) return;
      const frame = Math.min(total, Math.floor(lead.currentTime * fps) + 1);
      for (const pane of panes.slice(1)) {  // the second video follows the first within a frame
        if (Math.abs(pane.video.currentTime - lead.currentTime) > 1 / fps) pane.video.currentTime = lead.currentTime;
      }
      if (frame !== state.frame) show(frame);
      requestAnimationFrame(playing);
    };
    lead.addEventListener("play", () => requestAnimationFrame(playing));
    lead.addEventListener("pause", () => { state.target = state.frame; });

    const jump = (kind, forward) => {
      const frames = [...new Set(state.events.filter(e => e.kind === kind).map(e => e.frame))].sort((a, b) => a - b);
      const next = forward ? frames.find(f => f > state.frame) : [...frames].reverse().find(f => f < state.frame);
      if (next !== undefined) seek(next);
    };
    for (const kind of KINDS) {
      for (const [id, forward] of [[`next-${kind}`, true], [`prev-${kind}`, false]]) {
        const button = document.getElementById(id);
        if (button) button.addEventListener("click", () => jump(kind, forward));
      }
    }
    document.getElementById("prev-frame").addEventListener("click", () => seek(state.frame - 1));
    document.getElementById("next-frame").addEventListener("click", () => seek(state.frame + 1));
    const play = document.getElementById("play");
    play.addEventListener("click", () => {
      const videos = panes.map(p => p.video);
      if (lead.paused) { videos.forEach(v => v.play()); play.textContent = "❚❚ pause"; }
      else { videos.forEach(v => v.pause()); play.textContent = "▶ play"; }
    });
    document.addEventListener("keydown", event => {
      if (event.target.closest("input, textarea, select")) return;
      const step = event.shiftKey ? 10 : 1;
      if (event.key === "ArrowRight") { seek(state.frame + step); event.preventDefault(); }
      else if (event.key === "ArrowLeft") { seek(state.frame - step); event.preventDefault(); }
      else if (event.key === " ") { play.click(); event.preventDefault(); }
    });
    timeline.addEventListener("click", event => {
      const rect = timeline.getBoundingClientRect();
      seek(1 + ((event.clientX - rect.left) / rect.width) * (total - 1));
    });
    root.querySelectorAll("input[type=checkbox]").forEach(box => box.addEventListener("change", draw));
    window.addEventListener("resize", draw);

    for (const pane of panes) {
      const counts = pane.counts.querySelector("span");
      api(`/eval/${pane.run}/events`).then(report => {
        pane.events = report.events;
        for (const e of report.events) { if (!pane.byFrame.has(e.frame)) pane.byFrame.set(e.frame, []); pane.byFrame.get(e.frame).push(e); }
        const c = report.counts;
        counts.textContent = `${c.fn} misses, ${c.fp} false positives, ${c.idsw} ID switches, ${c.frag} fragmentations (equal TrackEval's CLR_FN, CLR_FP, IDSW, Frag)`;
        draw();
      }).catch(err => { counts.textContent = `no error events: ${err.message}`; });
    }
    const ready = () => panes.every(p => p.video.readyState >= 1);
    if (ready()) seek(1); else panes.forEach(p => p.video.addEventListener("loadedmetadata", () => { if (ready()) seek(1); }, { once: true }));
    show(1);
  }

  function refreshWhile(url, busy) {
    poll(async () => { const record = await api(url); if (!busy(record)) { window.location.reload(); return false; } return true; }, 3000);
  }

  return { liveRuns, uploadForm, runPage, sweepPage, comparePage, reviewPage, refreshWhile };
})();
