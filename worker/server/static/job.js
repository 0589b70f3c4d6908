// /ui/jobs/{id}: a job's whole story. Its record (state, args, result, error
// with traceback, earlier attempts' errors, steps, the question it asks), its
// event timeline with times from its first event (text deltas joined), its
// logs, its artifacts with previews, its parent, children and retries as
// links; Cancel, Retry and the answer form. Events stream in while it runs.
"use strict";

(() => {
  const { el, api, clear, badge, jobLink, time, duration, jobDuration, json } = SKILLQ;
  const jobId = decodeURIComponent(location.pathname.replace(/^\/ui\/jobs\//, "").replace(/\/+$/, ""));
  SKILLQ.header(document.body.dataset.here);
  const page = document.getElementById("page");
  const parts = {};
  for (const name of ["facts", "actions", "question", "args", "result", "error", "steps", "artifacts", "family", "timeline", "logs"]) {
    parts[name] = el("div", { id: name });
  }
  page.append(el("h1", {}, "Job ", el("span", { class: "mono", id: "job-id" }, jobId), " ", el("span", { id: "state" })),
    el("section", { class: "card" }, parts.facts, el("p", {}, parts.actions)),
    parts.question,
    el("div", { class: "grid" }, el("section", { class: "card" }, el("h2", {}, "Args"), parts.args),
      el("section", { class: "card" }, el("h2", {}, "Result"), parts.result)),
    parts.error,
    el("section", { class: "card" }, el("h2", {}, "Calls and retries"), parts.family),
    parts.steps,
    el("section", { class: "card" }, el("h2", {}, "Artifacts"), parts.artifacts),
    el("section", { class: "card" }, el("h2", {}, "Timeline"), parts.timeline),
    el("section", { class: "card" }, el("h2", {}, "Logs"), parts.logs));

  const events = [];
  let status = null, artifactsShown = "", familyShown = "", streaming = false, drawQueued = false;

  function fact(label, value) { return [el("dt", {}, label), el("dd", {}, value)]; }

  // What the job and the jobs it called spent (ctx.spend), against its budget.
  // Units are the job's strings ("constructor" too): they key Maps, never plain objects.
  function spending(s) {
    const spent = new Map(Object.entries(s.spend || {})), budget = new Map(Object.entries(s.budget || {}));
    const units = [...new Set([...spent.keys(), ...budget.keys()])].sort();
    const amount = (value) => `${+Number(value || 0).toFixed(6)}`;
    return units.flatMap((unit) => fact("spent " + unit, el("span", { "data-spent": unit },
      amount(spent.get(unit)) + (budget.has(unit) ? ` of ${amount(budget.get(unit))}` : ""))));
  }

  function drawStatus() {
    const s = status;
    clear(document.getElementById("state")).append(badge(s.state));
    clear(parts.facts).append(el("dl", { class: "facts" },
      fact("skill", s.skill || "-"), fact("queue", s.queue || "-"), fact("owner", s.owner || "-"),
      fact("worker", s.worker || "-"), fact("attempts", String(s.attempts)), fact("priority", String(s.priority)),
      fact("created", time(s.created_at)), fact("started", time(s.started_at)), fact("finished", time(s.finished_at)),
      fact("duration", duration(jobDuration(s))), s.progress ? fact("progress", s.progress) : [],
      s.notice ? fact("notice", s.notice) : [], s.eta ? fact("starts at", time(s.eta)) : [],
      spending(s)));
    const finished = ["succeeded", "failed", "cancelled"].includes(s.state);
    clear(parts.actions).append(
      el("button", { id: "cancel", type: "button", disabled: finished, onclick: cancel }, "Cancel"), " ",
      el("button", { id: "retry", type: "button", class: "primary", disabled: !finished || s.args === null, onclick: retry }, "Retry"),
      el("span", { id: "action-result", class: "muted" }));
    clear(parts.args).append(s.args === null ? el("p", { class: "muted" }, "Not kept (a plain Celery producer queued this job).") : el("pre", { id: "args-json" }, json(s.args)));
    clear(parts.result).append(s.state === "succeeded" ? el("pre", { id: "result-json" }, json(s.result)) : el("p", { class: "muted" }, finished ? "None." : "Not yet."));
    clear(parts.error);
    if (s.error || (s.errors && s.errors.length)) {
      const card = el("section", { class: "card", id: "error-card" }, el("h2", {}, "Error"));
      if (s.error) {
        card.append(el("p", { class: "error", id: "error-message" }, `${s.error.type} (${s.error.code}): ${s.error.message}`));
        if (s.error.traceback) card.append(el("pre", { id: "traceback" }, s.error.traceback));
      }
      (s.errors || []).forEach((earlier, i) => card.append(el("p", { class: "muted" }, `attempt ${i + 1}: ${earlier.type} (${earlier.code}): ${earlier.message}`)));
      parts.error.append(card);
    }
    drawQuestion();
    drawSteps();
    drawFamily();
    drawArtifacts();
  }

  function drawSteps() {
    clear(parts.steps);
    if (!status.steps || !status.steps.length) return;
    parts.steps.append(el("section", { class: "card" }, el("h2", {}, "Steps"), el("table", {},
      el("thead", {}, el("tr", {}, ["Step", "State", "Started", "Ended"].map((h) => el("th", {}, h)))),
      el("tbody", {}, status.steps.map((step) => el("tr", {}, el("td", { class: "mono" }, step.name), el("td", {}, step.state || "done"),
        el("td", {}, time(step.started_at)), el("td", {}, time(step.ended_at))))))));
  }

  async function drawFamily() {
    const s = status;
    const key = JSON.stringify([s.parent, s.retry_of, s.retried_by, s.children, s.state]);
    if (key === familyShown) return;
    familyShown = key;
    const list = el("ul", { class: "tree", id: "family-list" });
    if (s.parent) list.append(el("li", {}, "called by ", jobLink(s.parent)));
    if (s.retry_of) list.append(el("li", {}, "a retry of ", jobLink(s.retry_of)));
    for (const id of s.retried_by || []) list.append(el("li", {}, "retried as ", jobLink(id)));
    if (s.children && s.children.length) {
      const kids = el("ul", { class: "tree" });
      list.append(el("li", {}, `called ${s.children.length}:`, kids));
      for (const id of s.children.slice(0, 50)) {
        const item = el("li", {}, jobLink(id));
        kids.append(item);
        api("GET", "/v1/jobs/" + encodeURIComponent(id)).then((child) => item.append(" ", child.skill || "", " ", badge(child.state))).catch(() => {});
      }
    }
    if (!list.childNodes.length) list.append(el("li", { class: "muted" }, "None."));
    clear(parts.family).append(list);
  }

  async function drawArtifacts() {
    const key = JSON.stringify(status.artifacts.map((a) => [a.name, a.size_bytes]));
    if (key === artifactsShown) return;
    artifactsShown = key;
    const box = clear(parts.artifacts);
    if (!status.artifacts.length) { box.append(el("p", { class: "muted" }, "None.")); return; }
    for (const item of status.artifacts) {
      const path = `/v1/jobs/${encodeURIComponent(jobId)}/artifacts/${item.name.split("/").map(encodeURIComponent).join("/")}`;
      const preview = el("div", { class: "preview" });
      const save = el("button", { type: "button", onclick: () => download(path, item.name) }, "Download");
      box.append(el("div", { class: "artifact", "data-name": item.name }, el("p", {}, el("strong", { class: "mono" }, item.name), " ",
        el("span", { class: "muted" }, `${item.mime_type}, ${item.size_bytes} bytes `), save), preview));
      const type = (item.mime_type || "").toLowerCase();
      const image = /^image\/(png|jpeg|gif|webp)$/.test(type);
      const text = type.startsWith("text/") || type.includes("json") || type.includes("yaml");
      if ((!image && !text) || item.size_bytes > 1024 * 1024) continue;
      SKILLQ.blob(path + "?preview=true").then(async (blob) => {
        if (image) preview.append(el("img", { class: "preview", alt: item.name, src: URL.createObjectURL(blob) }));
        else {
          let shown = await blob.text();
          if (type.includes("json")) { try { shown = json(JSON.parse(shown)); } catch (_) { /* shown as written */ } }
          preview.append(el("pre", { class: "artifact-text" }, shown.slice(0, 65536)));
        }
      }).catch((error) => preview.append(el("p", { class: "error" }, SKILLQ.explain(error))));
    }
  }

  // From S3: the browser goes to a presigned URL (a fetch across origins would
  // need the bucket's CORS); from a local store: the bytes, through this server.
  async function download(path, name) {
    const { url } = await api("GET", path + "?link=true");
    const blob = url ? null : await SKILLQ.blob(path);
    const link = el("a", { href: url || URL.createObjectURL(blob), download: name.split("/").pop(), rel: "noopener" });
    link.click();
  }

  function drawQuestion() {
    clear(parts.question);
    const asked = status.state === "input_required" ? status.question : null;
    if (!asked) return;
    const schema = asked.schema || {};
    const props = schema.type === "object" && schema.properties ? schema.properties : null;
    const form = el("form", { class: "answer", id: "answer-form" });
    const read = [];
    if (props) {
      for (const [name, spec] of Object.entries(props)) {
        const id = "answer-" + name;
        let input;
        if (spec.type === "boolean") input = el("input", { id, type: "checkbox" });
        else if (Array.isArray(spec.enum)) input = el("select", { id }, spec.enum.map((v) => el("option", { value: JSON.stringify(v) }, String(v))));
        else if (spec.type === "number" || spec.type === "integer") input = el("input", { id, type: "number", step: spec.type === "integer" ? "1" : "any" });
        else if (spec.type === "string") input = el("input", { id, type: "text" });
        else input = el("textarea", { id, rows: 3 }, "null");
        form.append(el("label", { for: id }, name, spec.description ? el("span", { class: "muted" }, " " + spec.description) : null), input);
        read.push([name, () => {
          if (spec.type === "boolean") return input.checked;
          if (Array.isArray(spec.enum)) return JSON.parse(input.value);
          if (spec.type === "number" || spec.type === "integer") return input.value === "" ? undefined : Number(input.value);
          if (spec.type === "string") return input.value;
          return JSON.parse(input.value);
        }]);
      }
    } else {
      const area = el("textarea", { id: "answer-json", rows: 4 }, "null");
      form.append(el("label", { for: "answer-json" }, "Answer (JSON)"), area);
      read.push([null, () => JSON.parse(area.value)]);
    }
    const said = el("span", { id: "answer-error", class: "error" });
    form.append(el("p", {}, el("button", { type: "submit", class: "primary" }, "Answer"), " ", said));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      let data;
      try {
        if (read.length === 1 && read[0][0] === null) data = read[0][1]();
        else { data = Object.create(null); for (const [name, get] of read) { const v = get(); if (v !== undefined) data[name] = v; } }
      } catch (error) { said.textContent = "not JSON: " + error.message; return; }
      try { await api("POST", `/v1/jobs/${encodeURIComponent(jobId)}/input`, { data }); said.textContent = ""; await load(); }
      catch (error) { said.textContent = SKILLQ.explain(error); }
    });
    parts.question.append(el("section", { class: "card", id: "question-card" }, el("h2", {}, "Waiting for an answer"),
      el("p", { id: "question-text" }, el("strong", {}, asked.question)),
      asked.expires_at ? el("p", { class: "muted" }, "until " + time(asked.expires_at)) : null, form));
  }

  // The timeline: one row per event, consecutive text deltas joined into one.
  function drawTimeline() {
    drawQueued = false;
    const start = events.length ? events[0].ts : 0;
    const rows = [];
    const logs = [];
    for (const e of events) {
      const at = "+" + duration(e.ts - start);
      const p = e.payload || {};
      if (e.kind === "log") { logs.push(el("tr", {}, el("td", { class: "num" }, at), el("td", {}, p.level || ""), el("td", { class: "mono" }, p.logger || ""), el("td", {}, el("pre", {}, String(p.message ?? ""))))); continue; }
      const last = rows[rows.length - 1];
      if (e.kind === "text_delta" && last && last.kind === "text_delta") { last.text += String(p.text ?? ""); continue; }
      rows.push({ at, kind: e.kind, seq: e.seq, text: e.kind === "text_delta" ? String(p.text ?? "") : null, payload: p });
    }
    const describe = (row) => {
      const p = row.payload;
      if (row.kind === "text_delta") return el("pre", {}, row.text);
      if (row.kind === "status") return [badge(String(p.state)), p.attempt ? ` attempt ${p.attempt}` : "", p.worker ? ` on ${p.worker}` : "", p.error ? ` ${p.error.type}: ${p.error.message}` : ""];
      if (row.kind === "progress") return String(p.message ?? json(p));
      if (row.kind === "step") return `${p.name}: ${p.state}${p.error ? " (" + p.error + ")" : ""}`;
      if (row.kind === "artifact") return `${p.name} (${p.mime_type || ""}, ${p.size_bytes ?? "?"} bytes)`;
      return el("pre", {}, json(p));
    };
    clear(parts.timeline).append(el("table", { id: "timeline-table" },
      el("thead", {}, el("tr", {}, el("th", { class: "num" }, "At"), el("th", {}, "Kind"), el("th", {}, "What"))),
      el("tbody", {}, rows.map((row) => el("tr", { "data-kind": row.kind }, el("td", { class: "num" }, row.at), el("td", {}, row.kind), el("td", {}, describe(row)))))));
    clear(parts.logs).append(logs.length
      ? el("table", { id: "logs-table" }, el("thead", {}, el("tr", {}, ["At", "Level", "Logger", "Message"].map((h) => el("th", {}, h)))), el("tbody", {}, logs))
      : el("p", { class: "muted" }, "None."));
  }

  async function follow() {
    if (streaming) return;
    streaming = true;
    try {
      await SKILLQ.events(jobId, events.length ? events[events.length - 1].seq : 0, (envelope) => {
        events.push(envelope);
        if (!drawQueued) { drawQueued = true; requestAnimationFrame(drawTimeline); }
        if (envelope.kind === "status" || envelope.kind === "artifact" || envelope.kind === "step") load();
      });
    } catch (error) {
      SKILLQ.say(SKILLQ.explain(error));
    } finally {
      streaming = false;
      drawTimeline();
      load();
    }
  }

  async function load() {
    try {
      status = await api("GET", "/v1/jobs/" + encodeURIComponent(jobId));
      drawStatus();
      SKILLQ.say("");
    } catch (error) {
      SKILLQ.say(error.status === 404 ? `No job ${jobId} (or it is not yours).` : SKILLQ.explain(error));
    }
  }

  async function cancel() {
    const said = document.getElementById("action-result");
    try { await api("POST", `/v1/jobs/${encodeURIComponent(jobId)}/cancel`); said.textContent = " cancel asked"; await load(); }
    catch (error) { said.textContent = " " + SKILLQ.explain(error); }
  }

  async function retry() {
    const said = document.getElementById("action-result");
    try {
      const made = await api("POST", `/v1/jobs/${encodeURIComponent(jobId)}/retry`);
      location.assign("/ui/jobs/" + encodeURIComponent(made.job_id));
    } catch (error) { said.textContent = " " + SKILLQ.explain(error); }
  }

  load().then(() => { if (status) follow(); });
  SKILLQ.every(5, () => (status && !streaming && !["succeeded", "failed", "cancelled"].includes(status.state) ? follow() : Promise.resolve()));
})();
