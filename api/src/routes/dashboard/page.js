// Dashboard: reads /api/v1/analytics JSON with a bearer token and draws tables and SVG
// charts. The token comes from the URL fragment (#token=…, never sent to the server or
// logged) or the form, and is kept in sessionStorage (this tab only).
"use strict";
(function () {
  const KEY = "advancia.analytics.token";
  const frag = new URLSearchParams(location.hash.slice(1));
  if (frag.get("token")) {
    sessionStorage.setItem(KEY, frag.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  const params = new URLSearchParams(location.search);
  const days = Math.min(366, Math.max(1, parseInt(params.get("days") || "30", 10) || 30));
  const status = document.getElementById("status");
  const form = document.getElementById("auth");
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    sessionStorage.setItem(KEY, document.getElementById("token").value.trim());
    load();
  });

  function fail(msg) {
    status.textContent = msg;
    status.className = "error";
    document.body.dataset.state = "error";
  }

  function cell(tr, text, key, numeric) {
    const td = document.createElement("td");
    td.textContent = text;
    if (key) td.dataset.k = key;
    if (numeric) td.className = "n";
    tr.appendChild(td);
  }

  // Success rate as shown: a ratio of counts, one decimal of a percent.
  function rate(r) {
    return r.attempts > 0 ? (100 * r.succeeded / r.attempts).toFixed(1) + "%" : "–";
  }

  function row(body, r, prefix, withFacility) {
    const tr = document.createElement("tr");
    cell(tr, r.chain);
    if (withFacility) cell(tr, r.facility);
    cell(tr, r.mint);
    for (const f of ["payments", "releases", "refunds", "volume", "fees", "refunded"]) {
      // Amounts arrive as decimal strings (base units) and are shown as sent.
      cell(tr, String(r[f]), prefix + "|" + f, true);
    }
    cell(tr, rate(r), prefix + "|success_rate", true);
    body.appendChild(tr);
  }

  const SVGNS = "http://www.w3.org/2000/svg";
  function el(name, attrs) {
    const e = document.createElementNS(SVGNS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }

  // One bar chart of `field` per day on a continuous day axis [from, to); bar heights use
  // Number() (drawing only), the exact figure is kept in data-v and the tooltip.
  function chart(title, points, field, key, from, to) {
    const W = 360, H = 140, P = 24;
    const box = document.createElement("div");
    box.className = "chart";
    const h = document.createElement("h3");
    h.textContent = title;
    box.appendChild(h);
    const svg = el("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" });
    const max = Math.max(1, ...points.map(p => Number(p[field])));
    const days = Math.max(1, Math.round((to - from) / 86400000));
    const bw = (W - 2 * P) / days;
    svg.appendChild(el("line", { x1: P, y1: H - P, x2: W - P, y2: H - P, stroke: "#999" }));
    points.forEach(function (p) {
      const i = Math.floor((Date.parse(p.bucket) - from) / 86400000);
      const v = Number(p[field]);
      const bh = (H - 2 * P) * v / max;
      const rect = el("rect", {
        x: P + i * bw + 1, y: H - P - bh, width: Math.max(1, bw - 2), height: bh,
        fill: field === "fees" ? "#2a7" : field === "succeeded" ? "#a72" : "#27a",
      });
      rect.dataset.k = key + "|" + p.bucket.slice(0, 10) + "|" + field;
      rect.dataset.v = String(p[field]);
      const t = el("title", {});
      t.textContent = p.bucket.slice(0, 10) + ": " + p[field];
      rect.appendChild(t);
      svg.appendChild(rect);
    });
    const label = el("text", { x: P, y: 14, "font-size": 10, fill: "#555" });
    label.textContent = "max " + points.reduce((m, p) => (Number(p[field]) >= Number(m) ? p[field] : m), "0");
    svg.appendChild(label);
    const first = el("text", { x: P, y: H - 8, "font-size": 10, fill: "#555" });
    first.textContent = new Date(from).toISOString().slice(0, 10);
    svg.appendChild(first);
    const last = el("text", { x: W - P, y: H - 8, "font-size": 10, fill: "#555", "text-anchor": "end" });
    last.textContent = new Date(to - 86400000).toISOString().slice(0, 10);
    svg.appendChild(last);
    box.appendChild(svg);
    return box;
  }

  async function get(path, token) {
    const res = await fetch(path, { headers: { Authorization: "Bearer " + token } });
    if (!res.ok) {
      let detail = res.status + " " + res.statusText;
      try { const p = await res.json(); detail = p.detail || p.title || detail; } catch (e) { /* not JSON */ }
      throw new Error(detail);
    }
    return res.json();
  }

  async function load() {
    const token = sessionStorage.getItem(KEY);
    if (!token) {
      form.hidden = false;
      status.textContent = "Paste an access token (admin or compliance officer).";
      document.body.dataset.state = "need-token";
      return;
    }
    form.hidden = true;
    const to = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate() + 1));
    const from = new Date(to.getTime() - days * 86400000);
    const q = "from=" + from.toISOString().slice(0, 10) + "&to=" + to.toISOString().slice(0, 10);
    try {
      const [summary, trends] = await Promise.all([
        get("/api/v1/analytics/transactions/summary?" + q, token),
        get("/api/v1/analytics/revenue/trends?granularity=day&" + q, token),
      ]);
      document.getElementById("period").textContent =
        "From " + summary.from + " to " + summary.to + " (UTC, end exclusive). Amounts in base units of each mint.";
      document.getElementById("period").dataset.from = summary.from;
      document.getElementById("period").dataset.to = summary.to;
      const tb = document.querySelector("#totals tbody");
      tb.textContent = "";
      summary.totals.forEach(r => row(tb, r, "total|" + r.chain + "|" + r.mint, false));
      const fb = document.querySelector("#facilities tbody");
      fb.textContent = "";
      summary.facilities.forEach(r => row(fb, r, "facility|" + r.chain + "|" + r.facility + "|" + r.mint, true));
      const charts = document.getElementById("charts");
      charts.textContent = "";
      const series = {};
      trends.forEach(function (p) {
        const k = p.chain + "|" + p.mint;
        (series[k] = series[k] || []).push(p);
      });
      Object.keys(series).sort().forEach(function (k) {
        const [chain, mint] = k.split("|");
        const short = mint.length > 12 ? mint.slice(0, 6) + "…" + mint.slice(-4) : mint;
        const names = { volume: "volume", fees: "fees (revenue)", succeeded: "intents finalized" };
        for (const f of ["volume", "fees", "succeeded"]) {
          charts.appendChild(chart(chain + " · " + short + " · " + names[f], series[k], f, "trend|" + k,
            Date.parse(summary.from), Date.parse(summary.to)));
        }
      });
      const fb2 = document.querySelector("#forecast tbody");
      fb2.textContent = "";
      for (const t of summary.totals) {
        const tr = document.createElement("tr");
        cell(tr, t.chain);
        cell(tr, t.mint);
        const key = "forecast|" + t.chain + "|" + t.mint;
        try {
          const f = await get("/api/v1/analytics/revenue/forecast?metric=fees&chain=" +
            encodeURIComponent(t.chain) + "&mint=" + encodeURIComponent(t.mint), token);
          cell(tr, f.forecast.join(" "), key + "|next", true);
          cell(tr, String(Math.round(f.holdout.mae)), key + "|mae", true);
          cell(tr, String(Math.round(f.baseline.mae)), key + "|naive_mae", true);
          cell(tr, f.holdout.smape.toFixed(1) + "%", key + "|smape", true);
        } catch (e) {
          const td = document.createElement("td");
          td.colSpan = 4;
          td.textContent = e.message;
          tr.appendChild(td);
        }
        fb2.appendChild(tr);
      }
      status.textContent = "Updated " + new Date().toISOString();
      status.className = "";
      document.body.dataset.state = "ready";
    } catch (e) {
      fail("Could not load analytics: " + e.message);
    }
  }
  load();
})();
