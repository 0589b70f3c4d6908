// /ui/jobs: the caller's jobs newest first (every caller's for admin), filtered
// by state, skill and time through bookmarkable URLs, paged by next_before;
// the first page refreshes itself every 2 s.
"use strict";

(() => {
  const { el, api, clear, badge, jobLink, time, duration, jobDuration } = SKILLQ;
  const STATES = ["", "queued", "running", "retrying", "input_required", "succeeded", "failed", "cancelled"];
  const WINDOWS = [["", "any time"], ["900", "last 15 min"], ["3600", "last hour"], ["86400", "last day"], ["604800", "last week"]];
  const params = new URLSearchParams(location.search);
  const pages = [];  // next_before of each page shown after the first

  SKILLQ.header(document.body.dataset.here);
  const page = document.getElementById("page");
  const state = el("select", { id: "filter-state", name: "state" }, STATES.map((s) => el("option", { value: s }, s || "any state")));
  const skill = el("input", { id: "filter-skill", name: "skill", list: "skills", placeholder: "any skill" });
  const since = el("select", { id: "filter-since", name: "since" }, WINDOWS.map(([v, label]) => el("option", { value: v }, label)));
  state.value = params.get("state") || "";
  skill.value = params.get("skill") || "";
  since.value = params.get("since") || "";
  const skills = el("datalist", { id: "skills" });
  const rows = el("tbody", { id: "jobs" });
  const more = el("button", { id: "more", type: "button", hidden: true }, "Older jobs");
  const shown = el("span", { id: "shown", class: "muted" });
  const form = el("form", { class: "filters", onsubmit: (event) => { event.preventDefault(); apply(); } },
    el("label", {}, "State", state), el("label", {}, "Skill", skill, skills), el("label", {}, "Created", since),
    el("button", { type: "submit", class: "primary" }, "Filter"), shown);
  page.append(el("h1", {}, "Jobs"), form,
    el("table", {}, el("thead", {}, el("tr", {},
      ["Job", "Skill", "State", "Owner", "Created", "Duration", "Attempts"].map((h, i) => el("th", { class: i >= 5 ? "num" : null }, h)))), rows),
    el("p", {}, more));
  state.addEventListener("change", apply);
  since.addEventListener("change", apply);

  function query(before) {
    const q = new URLSearchParams({ limit: "50" });
    if (state.value) q.set("state", state.value);
    if (skill.value.trim()) q.set("skill", skill.value.trim());
    if (since.value) q.set("since", String(Date.now() / 1000 - Number(since.value)));
    if (before !== undefined && before !== null) q.set("before", String(before));
    return "/v1/jobs?" + q.toString();
  }

  function apply() {
    const q = new URLSearchParams();
    if (state.value) q.set("state", state.value);
    if (skill.value.trim()) q.set("skill", skill.value.trim());
    if (since.value) q.set("since", since.value);
    history.replaceState(null, "", "/ui/jobs" + (q.toString() ? "?" + q.toString() : ""));
    pages.length = 0;
    refresh();
  }

  function row(job) {
    return el("tr", { "data-job": job.id, "data-state": job.state },
      el("td", {}, jobLink(job.id)), el("td", {}, job.skill || "-"), el("td", {}, badge(job.state)),
      el("td", {}, job.owner || "-"), el("td", {}, time(job.created_at)),
      el("td", { class: "num" }, duration(jobDuration(job))), el("td", { class: "num" }, job.attempts));
  }

  async function refresh() {
    try {
      const first = await api("GET", query());
      const found = [...first.jobs];
      let next = first.next_before;
      for (const before of pages) {  // the older pages a person opened stay open
        const older = await api("GET", query(before));
        found.push(...older.jobs);
        next = older.next_before;
      }
      clear(rows).append(...found.map(row));
      if (!found.length) rows.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No jobs match.")));
      more.hidden = next === null || next === undefined;
      more.dataset.next = next === null || next === undefined ? "" : String(next);
      shown.textContent = `${found.length} shown`;
      SKILLQ.say("");
    } catch (error) {
      SKILLQ.say(SKILLQ.explain(error));
    }
  }

  more.addEventListener("click", () => { if (more.dataset.next) { pages.push(Number(more.dataset.next)); refresh(); } });
  api("GET", "/v1/skills").then((list) => skills.append(...list.map((s) => el("option", { value: s.name })))).catch(() => {});
  SKILLQ.every(2, () => (pages.length ? Promise.resolve() : refresh()));
})();
