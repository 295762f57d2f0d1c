// Ops dashboard: live alerts over SSE, edge table refresh, relative times. No framework, no CDN.
// Every value from the server goes into the page with textContent or setAttribute, never as HTML.
"use strict";

function ago(iso) {
  const t = Date.parse(iso);
  if (!iso || Number.isNaN(t)) return iso || "never";
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return iso.slice(0, 16).replace("T", " ");
}

function refreshTimes(root) {
  for (const el of (root || document).querySelectorAll("time.ago")) {
    const iso = el.getAttribute("datetime");
    el.textContent = ago(iso);
    if (iso) el.title = iso;
  }
}

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) node.setAttribute(k, v);
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

const LABELS = {watchlist: "WATCH", high_risk: "RISK", detection: "SCAN", radiation: "RAD", quarantine: "QUAR",
                chain_break: "CHAIN", edge_offline: "OFF"};

function alertItem(a) {
  const li = el("li", {class: `alert sev-${a.severity} kind-${a.kind} fresh`, "data-key": a.key});
  if (a.thumbnail) li.append(el("img", {class: "thumb-sm", src: a.thumbnail, alt: "scan thumbnail"}));
  else li.append(el("span", {class: "thumb-sm placeholder kind-label", "aria-hidden": "true"}, LABELS[a.kind] || ""));
  const body = el("div", {class: "alert-body"});
  body.append(el("a", {class: "alert-title", href: a.link}, a.title));
  body.append(el("span", {class: "alert-edge"}, a.edge_id || "hub"));
  body.append(el("time", {class: "ago", datetime: a.ts}, ago(a.ts)));
  body.append(el("div", {class: "alert-detail"}, a.detail));
  li.append(body);
  return li;
}

function startAlerts(list) {
  const live = document.getElementById("live-state");
  const empty = document.getElementById("no-alerts");
  const after = list.dataset.lastId || "0";
  const source = new EventSource(`/api/alerts/stream?after=${encodeURIComponent(after)}`);
  source.onopen = () => { live.textContent = "live"; live.classList.add("on"); };
  source.onerror = () => { live.textContent = "reconnecting…"; live.classList.remove("on"); };
  source.addEventListener("alert", (msg) => {
    const a = JSON.parse(msg.data);
    if (list.querySelector(`li[data-key="${CSS.escape(a.key)}"]`)) return;
    list.prepend(alertItem(a));
    if (empty) empty.hidden = true;
    while (list.children.length > 200) list.lastElementChild.remove();
  });
}

function edgeRow(e) {
  const tr = el("tr", {class: `state-${e.state}`, "data-edge": e.edge_id});
  const id = el("td");
  id.append(el("span", {class: "edge-id"}, e.edge_id), el("br"),
            el("span", {class: "muted epoch"}, "epoch " + (e.edge_epoch || "-").slice(0, 8)));
  const state = el("td");
  state.append(el("span", {class: `badge state-${e.state}`}, e.state));
  const seen = el("td");
  seen.append(el("time", {class: "ago", datetime: e.last_seen || ""}, ago(e.last_seen)));
  const chain = el("td");
  chain.append(e.chain_ok ? el("span", {class: "badge ok"}, "verified")
                          : el("span", {class: "badge bad", title: e.chain_error || ""}, "BROKEN"));
  tr.append(id, state, seen, el("td", {}, e.backlog === null ? "-" : e.backlog), el("td", {}, e.watermark),
            el("td", {}, e.held_above_gap), chain);
  return tr;
}

async function refreshEdges(table) {
  try {
    const res = await fetch("/api/edges", {credentials: "same-origin", headers: {Accept: "application/json"}});
    if (res.status === 401) { window.location.href = "/login?next=/"; return; }
    if (!res.ok) return;
    const data = await res.json();
    const body = table.tBodies[0];
    const rows = data.edges.map(edgeRow);
    if (!rows.length) {
      const tr = el("tr", {class: "empty"});
      tr.append(el("td", {colspan: "7"}, "No edge has reported yet."));
      rows.push(tr);
    }
    body.replaceChildren(...rows);
    document.getElementById("edges-updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    document.getElementById("edges-updated").textContent = "hub unreachable";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  refreshTimes();
  setInterval(refreshTimes, 5000);
  const list = document.getElementById("alerts");
  if (list) startAlerts(list);
  const table = document.getElementById("edges");
  if (table) setInterval(() => refreshEdges(table), 3000);
});
