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
  const DAY = 86400000;
  const isDate = (s) => /^\d{4}-\d{2}-\d{2}$/.test(s || "") && !isNaN(Date.parse(s));
  // The period: ?from=YYYY-MM-DD&to=YYYY-MM-DD (to inclusive), else the last `days` days.
  function period() {
    const p = new URLSearchParams(location.search);
    if (isDate(p.get("from")) && isDate(p.get("to")) && p.get("from") <= p.get("to")) {
      return { from: new Date(p.get("from")), to: new Date(Date.parse(p.get("to")) + DAY) };
    }
    const now = new Date();
    const to = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1));
    return { from: new Date(to.getTime() - days * DAY), to: to };
  }
  const range = document.getElementById("range");
  const day = (d) => d.toISOString().slice(0, 10);
  function showRange() {
    const p = period();
    document.getElementById("from").value = day(p.from);
    document.getElementById("to").value = day(new Date(p.to.getTime() - DAY));
  }
  showRange();
  range.addEventListener("submit", function (e) {
    e.preventDefault();
    const from = document.getElementById("from").value;
    const to = document.getElementById("to").value;
    if (!isDate(from) || !isDate(to) || from > to) {
      fail("Choose a start date on or before the end date.");
      return;
    }
    const q = new URLSearchParams(location.search);
    q.set("from", from);
    q.set("to", to);
    q.delete("days");
    history.replaceState(null, "", location.pathname + "?" + q.toString());
    load();
  });
  // How people read amounts (from the summary): asset symbol and decimals, facility names.
  let assets = {};
  let names = {};
  function asset(chain, mint) {
    return assets[chain + "|" + mint] || { symbol: mint.length > 12 ? mint.slice(0, 4) + "…" + mint.slice(-4) : mint, decimals: 0 };
  }
  // Base units (a decimal string) in the asset's units, exactly: `9.36 SOL`.
  function units(base, a) {
    let s = String(base);
    const sign = s.startsWith("-") ? "-" : "";
    if (sign) s = s.slice(1);
    if (!/^\d+$/.test(s)) return sign + s + " " + a.symbol;
    const d = a.decimals;
    if (d > 0) {
      s = s.padStart(d + 1, "0");
      const whole = s.slice(0, s.length - d);
      const frac = s.slice(s.length - d).replace(/0+$/, "");
      s = frac ? whole + "." + frac : whole;
    }
    return sign + s + " " + a.symbol;
  }
  function facilityName(chain, key) {
    return names[chain + "|" + key] || (key.length > 12 ? key.slice(0, 4) + "…" + key.slice(-4) : key);
  }
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

  function cell(tr, text, key, numeric, raw, title) {
    const td = document.createElement("td");
    td.textContent = text;
    if (key) td.dataset.k = key;
    // The exact figure as the API sent it, beside the text shown.
    if (raw !== undefined) td.dataset.v = raw;
    if (title) td.title = title;
    if (numeric) td.className = "n";
    tr.appendChild(td);
    return td;
  }

  // Success rate as shown: a ratio of counts, one decimal of a percent.
  function rate(r) {
    return r.attempts > 0 ? (100 * r.succeeded / r.attempts).toFixed(1) + "%" : "–";
  }

  function row(body, r, prefix, withFacility) {
    const tr = document.createElement("tr");
    const a = asset(r.chain, r.mint);
    cell(tr, r.chain);
    if (withFacility) cell(tr, facilityName(r.chain, r.facility), prefix + "|name", false, undefined, r.facility);
    cell(tr, a.symbol, prefix + "|symbol", false, undefined, r.mint);
    for (const f of ["payments", "releases", "refunds"]) {
      cell(tr, String(r[f]), prefix + "|" + f, true);
    }
    for (const f of ["volume", "fees", "refunded"]) {
      // Amounts arrive as decimal strings (base units) and are shown in the asset's units.
      cell(tr, units(r[f], a), prefix + "|" + f, true, String(r[f]));
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
  function chart(title, points, field, key, from, to, a) {
    const show = (v) => (a ? units(v, a) : String(v));
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
      t.textContent = p.bucket.slice(0, 10) + ": " + show(p[field]);
      rect.appendChild(t);
      svg.appendChild(rect);
    });
    const label = el("text", { x: P, y: 14, "font-size": 10, fill: "#555" });
    label.textContent = "max " + show(points.reduce((m, p) => (Number(p[field]) >= Number(m) ? p[field] : m), "0"));
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
    const { from, to } = period();
    const q = "from=" + day(from) + "&to=" + day(to);
    try {
      const [summary, trends] = await Promise.all([
        get("/api/v1/analytics/transactions/summary?" + q, token),
        get("/api/v1/analytics/revenue/trends?granularity=day&" + q, token),
      ]);
      assets = summary.assets || {};
      names = summary.facility_names || {};
      document.getElementById("period").textContent =
        "From " + summary.from + " to " + summary.to + " (UTC, end exclusive). Amounts in each asset's units.";
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
        const a = asset(chain, mint);
        const titles = { volume: "volume", fees: "fees (revenue)", succeeded: "intents finalized" };
        for (const f of ["volume", "fees", "succeeded"]) {
          charts.appendChild(chart(chain + " · " + a.symbol + " · " + titles[f], series[k], f, "trend|" + k,
            Date.parse(summary.from), Date.parse(summary.to), f === "succeeded" ? null : a));
        }
      });
      const fb2 = document.querySelector("#forecast tbody");
      fb2.textContent = "";
      for (const t of summary.totals) {
        const tr = document.createElement("tr");
        const a = asset(t.chain, t.mint);
        cell(tr, t.chain);
        cell(tr, a.symbol, undefined, false, undefined, t.mint);
        const key = "forecast|" + t.chain + "|" + t.mint;
        try {
          const f = await get("/api/v1/analytics/revenue/forecast?metric=fees&chain=" +
            encodeURIComponent(t.chain) + "&mint=" + encodeURIComponent(t.mint), token);
          cell(tr, f.forecast.map((v) => units(String(v), a)).join(", "), key + "|next", true, f.forecast.join(" "));
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
