// The dashboard's shared helpers. Plain JavaScript, no build step.
//
// Everything a job or a handler wrote (args, results, events, artifact names,
// errors) reaches the page through el() as text nodes, never as markup: the
// pages never assign innerHTML. The token is kept in this browser only
// (localStorage, the key the live page uses) and sent as a bearer header.
//
// Strings a job chose (units, queue and field names) key Maps or objects with
// no prototype, never plain ones: "constructor" is a member of every object.
// No element gets a style attribute, which the pages' CSP refuses: styles are
// classes in ui.css, or set through the CSSOM (node.style), which it allows.
"use strict";

const TOKEN_KEY = "skillq-token";
const SKILLQ = {};

SKILLQ.token = () => localStorage.getItem(TOKEN_KEY) || "";

// An element with attributes (and properties for on* handlers) and children:
// strings become text nodes, so nothing a job wrote is ever parsed as HTML.
SKILLQ.el = (tag, attrs, ...children) => {
  const node = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "style") throw new Error("the CSP refuses style attributes: use a class or node.style");
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
};

SKILLQ.clear = (node) => { while (node.firstChild) node.removeChild(node.firstChild); return node; };

SKILLQ.headers = (extra) => {
  const token = SKILLQ.token();
  return Object.assign(token ? { Authorization: "Bearer " + token } : {}, extra || {});
};

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}
SKILLQ.ApiError = ApiError;

SKILLQ.api = async (method, path, body) => {
  const init = { method, headers: SKILLQ.headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || String(response.status), error.message || text || response.statusText);
  }
  return data;
};

SKILLQ.blob = async (path) => {
  const response = await fetch(path, { headers: SKILLQ.headers() });
  if (!response.ok) throw new ApiError(response.status, String(response.status), await response.text());
  return response.blob();
};

// A job's events from the SSE route, read with fetch (EventSource cannot send
// a bearer token). Calls onEvent(envelope) per event; ends with the stream.
SKILLQ.events = async (jobId, after, onEvent, signal) => {
  const response = await fetch(`/v1/jobs/${encodeURIComponent(jobId)}/events?after=${after || 0}`, { headers: SKILLQ.headers(), signal });
  if (!response.ok || !response.body) throw new ApiError(response.status, String(response.status), "cannot read the job's events");
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    let cut;  // events end with a blank line; lines end with \r\n or \n
    while ((cut = buffered.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffered.slice(0, cut);
      buffered = buffered.slice(cut).replace(/^\r?\n\r?\n/, "");
      const data = block.split(/\r?\n/).filter((line) => line.startsWith("data:")).map((line) => line.slice(5).replace(/^ /, "")).join("\n");
      if (!data) continue;
      let envelope;
      try { envelope = JSON.parse(data); } catch (_) { continue; }
      if (envelope && typeof envelope.seq === "number") onEvent(envelope);
    }
  }
};

SKILLQ.time = (ts) => (ts ? new Date(ts * 1000).toLocaleString() : "-");
SKILLQ.duration = (seconds) => {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "-";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
};
SKILLQ.ago = (ts) => (ts ? SKILLQ.duration(Date.now() / 1000 - ts) + " ago" : "-");
SKILLQ.jobDuration = (job) => {
  if (!job.started_at) return null;
  return (job.finished_at || Date.now() / 1000) - job.started_at;
};
SKILLQ.badge = (state) => SKILLQ.el("span", { class: "state " + String(state), "data-state": state }, state);
SKILLQ.jobLink = (id) => SKILLQ.el("a", { href: "/ui/jobs/" + encodeURIComponent(id), class: "mono" }, id);
SKILLQ.json = (value) => JSON.stringify(value, null, 2);

// The page's banner: says what went wrong (no token, a scope missing, Redis away).
SKILLQ.say = (text) => {
  const banner = document.getElementById("banner");
  if (!banner) return;
  SKILLQ.clear(banner);
  banner.hidden = !text;
  if (text) banner.append(text);
};
SKILLQ.explain = (error) => {
  if (error instanceof ApiError && error.status === 401) return "This server needs a bearer token: paste yours above.";
  if (error instanceof ApiError && error.status === 403) return "Your token lacks the scope this view needs (" + error.message + ").";
  return String(error.message || error);
};

// The header every page shares: where you are, and the token field.
SKILLQ.header = (here) => {
  const { el } = SKILLQ;
  const links = [["/ui/", "Overview"], ["/ui/jobs", "Jobs"], ["/ui/workers", "Workers & queues"], ["/ui/run", "Run a skill"]];
  const input = el("input", { id: "token", type: "password", autocomplete: "off", placeholder: "bearer token" });
  input.value = SKILLQ.token();
  const form = el("form", { onsubmit: (event) => { event.preventDefault(); localStorage.setItem(TOKEN_KEY, input.value.trim()); location.reload(); } },
    input, el("button", { type: "submit" }, "Use"));
  const bar = el("header", {}, el("span", { class: "brand" }, "skillq"),
    links.map(([href, label]) => el("a", { href, class: href === here ? "here" : null }, label)), form);
  document.body.prepend(bar);
};

// Run fn now and every `seconds` while the page is visible.
SKILLQ.every = (seconds, fn) => {
  let busy = false;
  const tick = async () => {
    if (busy || document.hidden) return;
    busy = true;
    try { await fn(); } finally { busy = false; }
  };
  tick();
  return setInterval(tick, seconds * 1000);
};
