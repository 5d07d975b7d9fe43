// The contest's single page: login, problems, submit, own submissions with
// their logs, scoreboard, and the admin's problem upload and rejudge. Talks to
// the JSON API of web.py; every POST carries X-Contest: 1 (see web.py).
"use strict";

const $ = (id) => document.getElementById(id);
let me = null;
let timer = null;

async function api(method, path, body, type) {
  const opts = { method, headers: {} };
  if (method === "POST") opts.headers["X-Contest"] = "1";
  if (body !== undefined) {
    opts.body = body;
    if (type) opts.headers["Content-Type"] = type;
  }
  const r = await fetch(path, opts);
  const isJson = (r.headers.get("Content-Type") || "").startsWith("application/json");
  const data = isJson ? await r.json() : await r.text();
  if (!r.ok) throw new Error(data && data.error ? data.error : `HTTP ${r.status}`);
  return data;
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function verdictClass(s) {
  if (!s.verdict) return "v-pending";
  return s.verdict === "accepted" ? "v-accepted" : "v-other";
}

async function showDetails(id) {
  const s = await api("GET", `/api/submissions/${id}`);
  const lines = [`Submission ${s.id} (${s.problem}, ${s.filename}): files ${s.files.join(", ")}`];
  for (const j of s.judgings) {
    lines.push("", `Judging ${j.id}: ${j.status} ${j.verdict || ""}` +
      (j.score != null ? `, score ${j.score.toFixed(3)}` : ""), j.log || "");
  }
  $("details").textContent = lines.join("\n");
  $("details").hidden = false;
}

async function rejudge(id) {
  await api("POST", "/api/admin/rejudge", JSON.stringify({ submission: id }), "application/json");
  refresh();
}

async function loadSubmissions() {
  const subs = await api("GET", "/api/submissions");
  const tbody = $("submissions").querySelector("tbody");
  tbody.replaceChildren();
  let pending = false;
  for (const s of subs) {
    const tr = document.createElement("tr");
    tr.dataset.id = s.id;
    tr.dataset.verdict = s.verdict || "";
    cell(tr, s.id);
    cell(tr, s.team);
    cell(tr, s.problem);
    cell(tr, s.filename);
    cell(tr, s.status === "done" ? s.verdict : (s.status || "queued"), verdictClass(s)).className += " verdict";
    cell(tr, s.score != null ? s.score.toFixed(3) : "");
    cell(tr, s.time_us != null ? (s.time_us / 1e6).toFixed(3) : "");
    const td = cell(tr, "");
    const b = document.createElement("button");
    b.textContent = "Logs";
    b.className = "logs-button";
    b.onclick = () => showDetails(s.id).catch((e) => alert(e.message));
    td.appendChild(b);
    if (me.admin) {
      const rj = document.createElement("button");
      rj.textContent = "Rejudge";
      rj.className = "rejudge-button";
      rj.onclick = () => rejudge(s.id).catch((e) => alert(e.message));
      td.appendChild(rj);
    }
    if (s.status !== "done") pending = true;
    tbody.appendChild(tr);
  }
  return pending;
}

async function loadScoreboard() {
  const rows = await api("GET", "/api/scoreboard");
  const tbody = $("scoreboard").querySelector("tbody");
  tbody.replaceChildren();
  rows.forEach((r, i) => {
    const tr = document.createElement("tr");
    tr.dataset.team = r.team;
    cell(tr, i + 1);
    cell(tr, r.team);
    cell(tr, r.total.toFixed(3)).className = "total";
    cell(tr, Object.entries(r.problems).map(([p, s]) => `${p}: ${s.toFixed(3)}`).join(", "));
    tbody.appendChild(tr);
  });
}

async function loadProblems() {
  const probs = await api("GET", "/api/problems");
  const box = $("problems");
  const sel = $("submit-problem");
  box.replaceChildren();
  sel.replaceChildren();
  for (const p of probs) {
    const d = document.createElement("details");
    const sum = document.createElement("summary");
    sum.textContent = `${p.name}: ${p.title} (time limit ${p.time_limit_s} s` +
      (p.gpus ? `, ${p.gpus} GPU` : "") + ")";
    const pre = document.createElement("pre");
    pre.textContent = p.statement;
    d.append(sum, pre);
    box.appendChild(d);
    const o = document.createElement("option");
    o.value = o.textContent = p.name;
    sel.appendChild(o);
  }
}

async function refresh() {
  clearTimeout(timer);
  let pending = false;
  try {
    if (me) pending = await loadSubmissions();
    await loadScoreboard();
  } catch (e) {
    $("submit-status").textContent = e.message;
  }
  timer = setTimeout(refresh, pending ? 1000 : 5000);
}

function show(loggedIn) {
  $("login-view").hidden = loggedIn;
  $("team-view").hidden = !loggedIn;
  $("logout-button").hidden = !loggedIn;
  $("admin").hidden = !(loggedIn && me.admin);
  $("who").textContent = loggedIn ? `Team ${me.team}` + (me.admin ? " (admin)" : "") : "";
}

async function start() {
  try {
    me = await api("GET", "/api/me");
    show(true);
    await loadProblems();
  } catch (e) {
    me = null;
    show(false);
  }
  refresh();
}

$("login-form").onsubmit = async (ev) => {
  ev.preventDefault();
  try {
    await api("POST", "/api/login",
      JSON.stringify({ team: $("login-team").value, password: $("login-password").value }),
      "application/json");
    $("login-error").textContent = "";
    start();
  } catch (e) {
    $("login-error").textContent = e.message;
  }
};

$("logout-button").onclick = async () => {
  await api("POST", "/api/logout");
  start();
};

$("submit-form").onsubmit = async (ev) => {
  ev.preventDefault();
  const f = $("submit-file").files[0];
  const p = $("submit-problem").value;
  try {
    const r = await api("POST", `/api/submit?problem=${encodeURIComponent(p)}` +
      `&filename=${encodeURIComponent(f.name)}`, f, "application/octet-stream");
    $("submit-status").textContent = `Submission ${r.id} queued`;
    refresh();
  } catch (e) {
    $("submit-status").textContent = `Refused: ${e.message}`;
  }
};

$("problem-form").onsubmit = async (ev) => {
  ev.preventDefault();
  const f = $("problem-file").files[0];
  try {
    const r = await api("POST", `/api/admin/problems?filename=${encodeURIComponent(f.name)}`, f,
      "application/octet-stream");
    $("admin-status").textContent = `Problem ${r.name} is at version ${r.version}`;
    loadProblems();
  } catch (e) {
    $("admin-status").textContent = `Refused: ${e.message}`;
  }
};

start();
