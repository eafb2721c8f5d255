// ECR web chat: talks to POST v1/recommend (relative URLs, so the page works under any route prefix).
// No inline script or style anywhere (the page is served with a self-only Content-Security-Policy).
"use strict";
const $ = (id) => document.getElementById(id);
// The server issues session ids (POST v1/sessions); the page keeps the turns it showed, so that a session that
// expired is replaced by a new one holding the same conversation.
let sessionId = null;
let turns = [];
let maxTurns = 50;

async function newSession() {
  const s = await post("v1/sessions", {});
  maxTurns = s.max_turns;
  return s.session_id;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);  // text is appended as text nodes: no HTML injection
  return e;
}

function authHeaders(headers = {}) {
  const token = sessionStorage.getItem("ecr-token");
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

function addTurn(role, text) {
  const li = el("li", { class: role }, text);
  $("chat").append(li);
  li.scrollIntoView({ block: "end" });
  return li;
}

async function post(path, body) {
  const headers = authHeaders({ "Content-Type": "application/json" });
  const r = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
  if (r.status === 401) {
    const t = prompt("This server needs an API token:");
    if (t) { sessionStorage.setItem("ecr-token", t); return post(path, body); }
  }
  const data = await r.json().catch(() => ({ error: { message: `HTTP ${r.status}` } }));
  if (!r.ok) {
    const err = new Error(data.error ? data.error.message : `HTTP ${r.status}`);
    err.code = data.error && data.error.code;
    throw err;
  }
  return data;
}

async function ask(text, generate) {
  const turn = { role: "user", text };
  if (sessionId === null) sessionId = await newSession();
  const body = { dialogue: [turn], session_id: sessionId, top_k: 5, generate };
  try {
    return await post("v1/recommend", body);
  } catch (e) {
    if (e.code !== "session_not_found") throw e;
    sessionId = await newSession();  // expired: a new session with the conversation so far
    return post("v1/recommend", { ...body, dialogue: [...turns, turn].slice(-maxTurns), session_id: sessionId });
  }
}

function showMovies(items) {
  const ol = $("movies");
  ol.replaceChildren(...(items.length ? items.map((it) =>
    el("li", { class: "movie", "data-entity-id": it.entity_id }, el("span", { class: "name" }, it.name),
      el("span", { class: "score" }, it.score.toFixed(3))))
    : [el("li", { class: "empty" }, "no recommendation")]));
}

function showEmotions(perTurn) {
  const last = perTurn[perTurn.length - 1] || {};
  const top = Object.entries(last).sort((a, b) => b[1] - a[1]).slice(0, 5);
  $("emotions").replaceChildren(...top.map(([label, p]) => {
    const fill = el("span");
    fill.style.width = `${Math.round(p * 100)}%`;  // CSSOM, not a style attribute: allowed by the CSP
    const bar = el("div", { class: "bar" }, fill);
    return el("li", { class: "emotion" }, el("span", {}, label), bar, el("span", {}, `${Math.round(p * 100)}%`));
  }));
}

// The reply guard's verdict (generator/guard.py): what it took out of the generated reply, said to the user.
function guardNote(g) {
  if (!g || !g.trimmed) return "";
  const why = (g.dropped || []).map((d) => d.reason === "viewing_claim"
    ? "a claim of having just watched it"
    : d.reason === "repeats"
      ? "a repetition of what was already said"
      : `a mention of ${(d.entities || []).join(", ")}, which is not linked to this movie`);
  return `(${why.length} sentence${why.length === 1 ? "" : "s"} removed: ${[...new Set(why)].join("; ")})`;
}

function showExplanation(x) {
  const box = $("explanation");
  const parts = [];
  const entities = x.entities || [];
  if (entities.length) {
    parts.push(el("div", {}, "Entities and the emotions you attached to them:"));
    parts.push(el("ul", {}, ...entities.map((e) =>
      el("li", {}, e.name, ...(e.emotions || []).map((m) => el("span", { class: "tag" }, typeof m === "string" ? m : (m.label || JSON.stringify(m))))))));
  }
  if ((x.triples || []).length) parts.push(el("div", {}, "Knowledge used:"), el("ul", {}, ...x.triples.map((t) => el("li", {}, t))));
  if ((x.review_entities || []).length) parts.push(el("div", {}, "From reviews: ", x.review_entities.join(", ")));
  box.replaceChildren(...(parts.length ? parts : [el("p", { class: "empty" }, "no entities recognised yet")]));
}

$("form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const text = $("message").value.trim();
  if (!text) return;
  $("message").value = "";
  $("error").hidden = true;
  addTurn("user", text);
  const pending = addTurn("recommender pending", "…thinking");
  $("send").disabled = true;
  try {
    const data = await ask(text, $("generate").checked);
    turns.push({ role: "user", text }, { role: "recommender", text: data.response.final });
    pending.remove();
    const reply = addTurn("recommender", data.response.final);
    const note = [guardNote(data.response.guard), data.response.recommendation_source === "template"
      ? "(recommendation sentence from a template)" : ""].filter(Boolean).join(" ");
    if (note) reply.append(el("small", { class: "guard" }, note));
    showMovies(data.items);
    showEmotions(data.user_emotions);
    showExplanation(data.explanation || {});
  } catch (e) {
    pending.remove();
    $("error").textContent = e.message;
    $("error").hidden = false;
  } finally {
    $("send").disabled = false;
    $("message").focus();
  }
});

$("reset").addEventListener("click", async () => {
  const old = sessionId;
  sessionId = null;
  turns = [];
  $("chat").replaceChildren();
  showMovies([]);
  if (old !== null) {
    fetch(`v1/sessions/${encodeURIComponent(old)}`, { method: "DELETE", headers: authHeaders() }).catch(() => {});
  }
});
