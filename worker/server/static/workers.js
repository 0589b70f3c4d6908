// /ui/workers: live workers, each queue's backlog and oldest waiting job, the
// newest dead letters with their reasons, and how many schedules there are with
// the next ones to fire; refreshed every 3 s from /v1/overview (admin).
"use strict";

(() => {
  const { el, api, clear, time, ago, jobLink } = SKILLQ;
  SKILLQ.header(document.body.dataset.here);
  const page = document.getElementById("page");
  const box = (id) => el("div", { id });
  const parts = { workers: box("workers"), queues: box("queues"), dead: box("dead-letters"), schedules: box("schedules") };
  page.append(el("h1", {}, "Workers and queues"),
    el("section", { class: "card" }, el("h2", {}, "Workers"), parts.workers),
    el("section", { class: "card" }, el("h2", {}, "Queues"), parts.queues),
    el("section", { class: "card" }, el("h2", {}, "Dead letters"), parts.dead),
    el("section", { class: "card" }, el("h2", {}, "Schedules"), parts.schedules));

  const table = (id, heads, rows, empty) => (rows.length
    ? el("table", { id }, el("thead", {}, el("tr", {}, heads.map((h) => el("th", {}, h)))), el("tbody", {}, rows))
    : el("p", { class: "muted" }, empty));
  const cells = (...values) => values.map((v) => el("td", {}, v));

  async function refresh() {
    try {
      const o = await api("GET", "/v1/overview");
      clear(parts.workers).append(table("workers-table", ["Worker", "Agent", "Pool", "Concurrency", "Running", "Queues", "Skills", "Last heartbeat", "Up since"],
        o.workers.map((w) => el("tr", { "data-worker": w.hostname }, cells(el("span", { class: "mono" }, w.hostname), w.agent || "-", w.pool || "-",
          String(w.concurrency ?? "-"), String(w.running), (w.queues || []).join(", "), (w.skills || []).join(", "), ago(w.beat_at), time(w.started_at)))),
        "No live worker."));
      clear(parts.queues).append(table("queues-table", ["Queue", "Backlog", "Queued", "Running", "Oldest waiting"],
        o.queues.map((q) => el("tr", { "data-queue": q.queue }, cells(q.queue, String(q.backlog), String(q.queued), String(q.taken),
          q.oldest_waiting_at ? ago(q.oldest_waiting_at) : "-"))),
        "No queue known."));
      clear(parts.dead).append(el("p", { class: "muted" }, `${o.dead_letters_total} kept`), table("dead-table", ["At", "Queue", "Reason", "Job", "Task"],
        o.dead_letters.map((d) => el("tr", {}, cells(time(d.at), d.queue, d.reason, d.job_id ? jobLink(d.job_id) : "-", d.task || "-"))),
        "None."));
      clear(parts.schedules).append(el("p", { class: "muted" }, `${o.schedules_total} kept, ${o.schedules_paused} paused; the next to fire:`), table("schedules-table", ["Schedule", "Skill", "Every / cron", "Next run", "Last run", "Last job", "Owner"],
        o.schedules.map((s) => el("tr", {}, cells(s.spec.name, s.spec.skill, s.spec.cron || (s.spec.every ? `every ${s.spec.every} s` : "-"),
          s.paused ? "paused" : time(s.next_run_at), time(s.last_run_at), s.last_job ? jobLink(s.last_job) : "-", s.spec.owner || "-"))),
        "None."));
      SKILLQ.say("");
    } catch (error) {
      SKILLQ.say(SKILLQ.explain(error));
    }
  }
  SKILLQ.every(3, refresh);
})();
