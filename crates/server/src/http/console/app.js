// raftsched's web console: hash routes over the node's console API (/api/v1), polled every
// 2 s. No framework and no build step: the node embeds this file as it is.
//
// The API speaks the proto3 JSON mapping: camelCase names, 64-bit integers as strings,
// enums by their proto names, default values left out.
"use strict";

const POLL_MS = 2000;
const TOKEN_KEY = "raftsched.console.token";
const FINISHED = ["succeeded", "failed", "cancelled", "skipped"];
const TASK_STATES = ["pending", "waiting", "running", "succeeded", "failed", "cancelled", "skipped"];

let timer = null;
let generation = 0;
// queue name -> {finished, atMs}: the previous overview's finished counts, for throughput.
const lastFinished = new Map();

// ---- DOM helpers: every text goes in through textContent, never as HTML ----

function h(tag, attrs, ...children) {
  const svg = ["svg", "g", "rect", "text", "path", "title"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function table(headers, rows, empty) {
  if (rows.length === 0) return h("p", { class: "muted" }, empty);
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", { class: name.endsWith("#") ? "num" : null }, name.replace(/#$/, ""))))),
    h("tbody", {}, rows));
}

function pill(text) {
  return h("span", { class: `pill s-${text}` }, text);
}

function section(title, note, ...body) {
  return h("section", {}, h("h2", {}, title, note ? h("small", {}, note) : null), ...body);
}

// ---- formatting ----

const num = (v) => Number(v || 0);
const enumName = (v, prefix) => (v || `${prefix}UNSPECIFIED`).replace(prefix, "").toLowerCase();
const taskState = (v) => enumName(v, "TASK_STATE_");

function ago(ms) {
  if (ms === undefined || ms === null) return "—";
  const s = Math.max(0, ms) / 1000;
  if (s < 1) return `${Math.round(ms)} ms`;
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

function when(ms) {
  if (!num(ms)) return "—";
  return new Date(num(ms)).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function namespace() {
  return document.getElementById("namespace").value.trim() || "default";
}

// ---- the API ----

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, body) {
  const headers = { "Content-Type": "application/json" };
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = body === undefined ? { headers } : { method: "POST", headers, body: JSON.stringify(body) };
  const response = await fetch(`/api/v1/${path}`, init);
  const text = await response.text();
  let json = {};
  try { json = text ? JSON.parse(text) : {}; } catch { json = { code: "Unknown", message: text }; }
  if (!response.ok) throw new ApiError(response.status, json.code || String(response.status), json.message || text);
  return json;
}

const call = (method, request) => api(method, request || {});
const stale = { consistency: "CONSISTENCY_STALE" };

// ---- views ----

async function overviewView() {
  const [overview, status] = await Promise.all([api("overview"), call("ClusterStatus").catch((e) => e)]);
  const view = [];
  const members = status instanceof Error ? [] : status.members || [];
  const maxLog = Math.max(0, ...members.map((m) => num(m.lastLogIndex)));
  view.push(section("Members", status instanceof Error ? `ClusterStatus: ${status.message}` : `as node ${overview.nodeId} sees them`,
    table(["node", "address", "role", "term#", "leader#", "last log#", "applied#", "lag#", "memory#", "health"],
      members.map((m) => h("tr", { "data-node-id": num(m.nodeId), "data-role": m.role },
        h("td", {}, num(m.nodeId)), h("td", {}, m.address || ""), h("td", {}, pill(m.role || "unknown")),
        h("td", { class: "num" }, num(m.term)), h("td", { class: "num" }, num(m.leaderId) || "—"),
        h("td", { class: "num" }, num(m.lastLogIndex)), h("td", { class: "num" }, num(m.lastAppliedIndex)),
        h("td", { class: "num" }, m.role === "unreachable" ? "—" : maxLog - num(m.lastAppliedIndex)),
        h("td", { class: "num" }, num(m.rssBytes) ? `${(num(m.rssBytes) / 1048576).toFixed(0)} MiB` : "—"),
        h("td", {}, m.error || (m.alarms || []).join("; ") || "ok"))),
      "no member answered")));

  const now = num(overview.nowMs);
  const queueRows = (overview.queues || []).map((q) => {
    const t = q.tasks || {};
    const finished = FINISHED.reduce((sum, s) => sum + num(t[s]), 0);
    const before = lastFinished.get(q.name);
    lastFinished.set(q.name, { finished, atMs: now });
    const rate = before && now > before.atMs ? Math.max(0, ((finished - before.finished) * 1000) / (now - before.atMs)) : null;
    return h("tr", { "data-queue": q.name },
      // The search runs in the namespace box's namespace: the queue's, from this link.
      h("td", {}, h("a", { href: `#/tasks?queue=${encodeURIComponent(q.queue)}`,
        onclick: () => { document.getElementById("namespace").value = q.namespace; } }, q.name)),
      TASK_STATES.map((s) => h("td", { class: "num" }, num(t[s]))),
      h("td", { class: "num" }, num(q.ready)), h("td", { class: "num" }, ago(num(q.backlogAgeMs))),
      h("td", { class: "num" }, rate === null ? "…" : `${rate.toFixed(1)}/s`));
  });
  view.push(section("Queues", overview.queuesOmitted ? `${overview.queuesOmitted} more not shown` : "every namespace",
    table(["queue", ...TASK_STATES.map((s) => `${s}#`), "ready#", "backlog age#", "finished#"], queueRows, "no queue holds a task")));

  const leaderView = overview.role === "leader";
  view.push(section("Workers", leaderView ? (overview.workersOmitted ? `${overview.workersOmitted} more not shown` : "")
    : "connections and heartbeats are known to the leader: open its dashboard for them",
    table(["worker", "namespace", "slots#", "running#", "free#", "state", "last heartbeat#"],
      (overview.workers || []).map((w) => h("tr", { "data-worker": w.workerId },
        h("td", {}, w.workerId), h("td", {}, w.namespace), h("td", { class: "num" }, w.slots),
        h("td", { class: "num" }, w.running), h("td", { class: "num" }, Math.max(0, w.slots - w.running)),
        h("td", {}, w.draining ? pill("draining") : w.connected === false ? pill("disconnected") : w.connected ? pill("connected") : "—"),
        h("td", { class: "num" }, w.lastHeartbeatAgeMs === undefined || w.lastHeartbeatAgeMs === null ? "—" : `${ago(w.lastHeartbeatAgeMs)} ago`))),
      "no worker registered")));
  return view;
}

function searchForm(params) {
  const field = (label, name, extra) => h("label", {}, label, h("input", { name, value: params.get(name) || "", spellcheck: "false", ...extra }));
  const state = h("select", { name: "state" }, h("option", { value: "" }, "any"),
    TASK_STATES.map((s) => h("option", { value: s, selected: params.get("state") === s }, s)));
  return h("form", { class: "search", id: "search", onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(event.target)) if (String(value).trim()) next.set(key, String(value).trim());
    location.hash = `#/tasks?${next}`;
  } },
  h("label", {}, "state", state), field("queue", "queue"), field("name contains", "name", { maxlength: 256 }),
  field("request id", "rid", { maxlength: 128 }), h("button", { type: "submit" }, "Search"));
}

async function tasksView(params) {
  const request = {
    ...stale, namespace: namespace(), pageSize: 50, queue: params.get("queue") || "",
    nameContains: params.get("name") || "", clientRequestId: params.get("rid") || "", pageToken: params.get("page") || "",
  };
  if (params.get("state")) request.state = `TASK_STATE_${params.get("state").toUpperCase()}`;
  const answer = await call("ListTasks", request);
  const rows = (answer.tasks || []).map((t) => {
    const spec = t.spec || {};
    return h("tr", { "data-task-id": t.id },
      h("td", {}, h("a", { href: `#/task/${t.id}` }, t.id)), h("td", {}, spec.name || ""), h("td", {}, spec.queue || "default"),
      h("td", {}, pill(taskState(t.state))), h("td", { class: "num" }, (t.attempts || []).length),
      h("td", {}, when(t.createdAtMs)), h("td", {}, t.reason || t.pendingReason || ""));
  });
  const more = answer.nextPageToken
    ? h("p", {}, h("a", { href: `#/tasks?${new URLSearchParams({ ...Object.fromEntries(params), page: answer.nextPageToken })}` }, "next page →"))
    : null;
  return [searchForm(params), section("Tasks", `namespace ${namespace()}, newest first`,
    table(["id", "name", "queue", "state", "attempts#", "created", "why"], rows, "no task matches"), more)];
}

function attemptRows(task) {
  return (task.attempts || []).map((a) => h("tr", {},
    h("td", {}, a.number || 0), h("td", {}, a.workerId || ""), h("td", {}, pill(enumName(a.outcome, "ATTEMPT_OUTCOME_"))),
    h("td", {}, when(a.startedAtMs)), h("td", {}, when(a.endedAtMs)),
    h("td", { class: "num" }, a.hasExitCode ? a.exitCode || 0 : "—"), h("td", {}, a.error || "")));
}

async function taskView(id) {
  const { task } = await call("GetTask", { ...stale, taskId: id });
  const spec = task.spec || {};
  const last = (task.attempts || []).at(-1) || {};
  const command = spec.command ? spec.command.commandLine : spec.opaque ? `opaque payload of kind ${spec.opaque.kind}` : "";
  const facts = [
    ["state", pill(taskState(task.state))], ["name", spec.name || ""], ["queue", spec.queue || "default"],
    ["namespace", spec.namespace || "default"], ["command", command], ["created", when(task.createdAtMs)],
    ["updated", when(task.updatedAtMs)], ["ready at", when(task.readyAtMs)], ["why", task.reason || task.pendingReason || ""],
    ["request id", spec.clientRequestId || ""], ["origin", task.origin || ""],
    ["workflow", num(task.workflowId) ? h("a", { href: `#/workflow/${task.workflowId}` }, `workflow ${task.workflowId}`) : ""],
    ["parent", num(task.parentTaskId) ? h("a", { href: `#/task/${task.parentTaskId}` }, task.parentTaskId) : ""],
  ].filter(([, v]) => v !== "");
  const view = [section(`Task ${task.id}`, spec.name, h("dl", { id: "task" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", { "data-fact": k }, v)])))];
  view.push(section("Attempts", `${(task.attempts || []).length} of at most ${spec.maxAttempts || 3}`,
    table(["#", "worker", "outcome", "started", "ended", "exit#", "error"], attemptRows(task), "not started yet")));
  if (last.stdoutTail || last.stderrTail) {
    view.push(section("Output of the latest attempt", "its tails, as the worker reported them",
      last.stdoutTail ? [h("h2", {}, "stdout"), h("pre", {}, last.stdoutTail)] : null,
      last.stderrTail ? [h("h2", {}, "stderr"), h("pre", {}, last.stderrTail)] : null));
  }
  if ((task.shards || []).length) {
    view.push(section("Shards", "", table(["#", "task", "state", "worker", "exit#"], task.shards.map((s) => h("tr", {},
      h("td", {}, s.index || 0), h("td", {}, h("a", { href: `#/task/${s.taskId}` }, s.taskId)), h("td", {}, pill(taskState(s.state))),
      h("td", {}, s.workerId || ""), h("td", { class: "num" }, s.hasExitCode ? s.exitCode || 0 : "—"))), "")));
  }
  return view;
}

async function schedulesView() {
  const { schedules } = await call("ListSchedules", { ...stale, namespace: namespace(), pageSize: 200 });
  return [section("Schedules", `namespace ${namespace()}`, table(["name", "state", "next fire", "fired#", "skipped#", "updated"],
    (schedules || []).map((s) => h("tr", { "data-schedule": s.name },
      h("td", {}, h("a", { href: `#/schedule/${encodeURIComponent(s.name)}` }, s.name)), h("td", {}, s.paused ? pill("paused") : pill("active")),
      h("td", {}, when((s.nextFireMs || [])[0])), h("td", { class: "num" }, num(s.firedCount)),
      h("td", { class: "num" }, num(s.skippedCount)), h("td", {}, when(s.updatedAtMs)))),
    "no schedule in this namespace"))];
}

async function scheduleView(name) {
  const { schedule } = await call("GetSchedule", { ...stale, namespace: namespace(), name });
  const spec = schedule.spec || {};
  const runs = (schedule.runs || []).slice().reverse();
  return [
    section(`Schedule ${schedule.name}`, schedule.paused ? "paused" : "active",
      h("dl", {}, h("dt", {}, "recurrence"),
        h("dd", {}, spec.cron ? `cron ${spec.cron.expression} (${spec.cron.timeZone || "UTC"})` : `every ${ago(num(spec.everyMs))}`),
        h("dt", {}, "command"), h("dd", {}, spec.template?.command?.commandLine || ""),
        h("dt", {}, "fired"), h("dd", {}, num(schedule.firedCount)), h("dt", {}, "skipped"), h("dd", {}, num(schedule.skippedCount)),
        h("dt", {}, "next fire times"), h("dd", {}, (schedule.nextFireMs || []).map(when).join(" · ") || "—"))),
    section("Recent runs", "newest first", table(["occurrence", "outcome", "task", "task state", "why"],
      runs.map((r) => h("tr", { "data-run": r.outcome || "" },
        h("td", {}, when(r.scheduledMs)), h("td", {}, r.outcome || ""),
        h("td", {}, num(r.taskId) ? h("a", { href: `#/task/${r.taskId}` }, r.taskId) : "—"),
        h("td", {}, num(r.taskId) ? pill(taskState(r.taskState)) : ""),
        h("td", {}, r.skippedCount ? `${r.skippedCount} skipped since ${when(r.firstSkippedMs)}: ${r.reason || ""}` : r.reason || ""))),
      "no run yet")),
  ];
}

// Lays the workflow out by depth (a task's column is one past its deepest parent) and
// draws it as SVG: one box per task, coloured by state, edges parent → child.
function dag(tasks) {
  const byId = new Map(tasks.map((t) => [String(t.task.id), t]));
  const depth = new Map();
  const depthOf = (id, seen = new Set()) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    const parents = (byId.get(id)?.task.dependsOn || []).map(String).filter((p) => byId.has(p));
    const d = parents.length ? 1 + Math.max(...parents.map((p) => depthOf(p, seen))) : 0;
    depth.set(id, d);
    return d;
  };
  const columns = [];
  for (const id of byId.keys()) (columns[depthOf(id)] ||= []).push(id);
  const [w, hgt, gapX, gapY] = [150, 36, 60, 16];
  const at = new Map();
  columns.forEach((ids, c) => ids.forEach((id, r) => at.set(id, { x: 10 + c * (w + gapX), y: 10 + r * (hgt + gapY) })));
  const width = 20 + columns.length * (w + gapX);
  const height = 20 + Math.max(1, ...columns.map((c) => c.length)) * (hgt + gapY);
  const edges = [];
  for (const [id, t] of byId) {
    for (const parent of (t.task.dependsOn || []).map(String).filter((p) => at.has(p))) {
      const a = at.get(parent), b = at.get(id);
      const [x1, y1, x2, y2] = [a.x + w, a.y + hgt / 2, b.x, b.y + hgt / 2];
      edges.push(h("path", { class: "edge", d: `M${x1},${y1} C${x1 + gapX / 2},${y1} ${x2 - gapX / 2},${y2} ${x2},${y2}` }));
    }
  }
  const nodes = [...byId].map(([id, t]) => {
    const p = at.get(id), state = taskState(t.task.state);
    const box = h("g", { "data-key": t.key, "data-state": state },
      h("title", {}, `${t.key}: task ${id}, ${state}`),
      h("rect", { x: p.x, y: p.y, width: w, height: hgt, rx: 6, class: `n-${state}` }),
      h("text", { x: p.x + 8, y: p.y + 15 }, t.key.slice(0, 20)),
      h("text", { x: p.x + 8, y: p.y + 29, class: "muted" }, `${state} · #${id}`));
    box.addEventListener("click", () => { location.hash = `#/task/${id}`; });
    return box;
  });
  return h("svg", { class: "dag", width, height, viewBox: `0 0 ${width} ${height}` }, edges, nodes);
}

async function workflowView(id) {
  const { workflow, nextPageToken } = await call("GetWorkflow", { ...stale, workflowId: id });
  const tasks = workflow.tasks || [];
  const byKey = new Map(tasks.map((t) => [String(t.task.id), t.key]));
  return [
    section(`Workflow ${workflow.id}`, `${workflow.name || ""} · ${enumName(workflow.state, "WORKFLOW_STATE_")} · ${workflow.taskCount || 0} tasks`,
      h("div", { id: "dag" }, dag(tasks)), nextPageToken ? h("p", { class: "muted" }, `the first ${tasks.length} tasks are drawn`) : null),
    section("Tasks", "", table(["key", "task", "state", "after"], tasks.map((t) => h("tr", {},
      h("td", {}, t.key), h("td", {}, h("a", { href: `#/task/${t.task.id}` }, t.task.id)), h("td", {}, pill(taskState(t.task.state))),
      h("td", {}, (t.task.dependsOn || []).map((id) => byKey.get(String(id)) || id).join(", ")))), "")),
  ];
}

// ---- routing and polling ----

function route() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query || "");
  const parts = (path || "/").split("/").filter(Boolean);
  switch (parts[0]) {
    case "tasks": return () => tasksView(params);
    case "task": return () => taskView(parts[1]);
    case "schedules": return () => schedulesView();
    case "schedule": return () => scheduleView(decodeURIComponent(parts[1] || ""));
    case "workflow": return () => workflowView(parts[1]);
    default: return () => overviewView();
  }
}

function showError(error) {
  const box = document.getElementById("error");
  box.hidden = !error;
  box.textContent = error ? `${error.code || "Error"}: ${error.message}` : "";
  document.getElementById("login").hidden = !(error && error.status === 401);
}

async function nodeBanner() {
  const o = await api("overview");
  const banner = document.getElementById("node");
  banner.dataset.nodeId = o.nodeId;
  banner.dataset.leaderId = o.leaderId || 0;
  banner.dataset.role = o.role;
  banner.textContent = `node ${o.nodeId} · ${o.role} · term ${o.term} · leader ${o.leaderId || "none"}` +
    (o.notReady ? ` · not ready: ${o.notReady}` : " · ready");
}

async function refresh(render, mine) {
  try {
    const [view] = await Promise.all([render(), nodeBanner()]);
    if (mine !== generation) return;
    const main = document.getElementById("view");
    const focused = document.activeElement && main.contains(document.activeElement) && document.activeElement.name;
    if (focused) return; // the operator is typing into the search form: keep it
    main.replaceChildren(...view);
    showError(null);
  } catch (error) {
    if (mine === generation) showError(error);
  }
}

function start() {
  clearTimeout(timer);
  const mine = ++generation;
  const render = route();
  const tick = async () => {
    await refresh(render, mine);
    if (mine === generation) timer = setTimeout(tick, POLL_MS);
  };
  document.getElementById("view").replaceChildren();
  tick();
}

function init() {
  const match = location.hash.match(/^#token=([^&]+)/);
  if (match) {
    localStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", `${location.pathname}#/`);
  }
  document.getElementById("login").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
    start();
  });
  document.getElementById("namespace").addEventListener("change", start);
  window.addEventListener("hashchange", start);
  start();
}

init();
