"""The preview page: the live MJPEG view, FPS, per-stage latency and the latest detections.

Static HTML; its script polls ``stats.json`` and ``detections.json`` twice a second and passes
on the page's own ``?token=`` to every request. Text from results is set with ``textContent``
(never parsed as HTML).
"""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgekit live</title>
<style>
  body { margin: 0; background: #111; color: #ddd; font: 14px/1.4 system-ui, sans-serif; }
  header { padding: 6px 10px; background: #222; }
  header b { color: #fff; }
  main { display: flex; flex-wrap: wrap; gap: 12px; padding: 10px; align-items: flex-start; }
  #live { display: block; max-width: 100%; background: #000; min-width: 160px; min-height: 120px; }
  section { min-width: 260px; }
  table { border-collapse: collapse; margin-bottom: 12px; }
  th, td { padding: 2px 8px; text-align: right; border-bottom: 1px solid #333; }
  th:first-child, td:first-child { text-align: left; }
  .num { font-variant-numeric: tabular-nums; color: #fff; }
  #state.down { color: #f66; }
</style>
</head>
<body>
<header>
  <b>edgekit live</b> &middot; <span id="fps" class="num">-</span> fps &middot;
  frame <span id="frame" class="num">-</span> &middot;
  <span id="count" class="num">-</span> detections &middot;
  <span id="poses" class="num">-</span> poses &middot;
  <span id="clients" class="num">-</span> viewer(s) &middot; <span id="state">connecting</span>
</header>
<main>
  <img id="live" alt="live view">
  <section>
    <table>
      <thead><tr><th>stage</th><th>p50 ms</th><th>p99 ms</th></tr></thead>
      <tbody id="stages"></tbody>
    </table>
    <table>
      <thead><tr><th>detection</th><th>track</th><th>score</th><th>box (px)</th></tr></thead>
      <tbody id="dets"></tbody>
    </table>
    <table>
      <thead><tr><th>class</th><th>score</th></tr></thead>
      <tbody id="classes"></tbody>
    </table>
  </section>
</main>
<script>
"use strict";
const token = new URLSearchParams(location.search).get("token");
const suffix = token ? "?token=" + encodeURIComponent(token) : "";
const $ = (id) => document.getElementById(id);
$("live").src = "stream.mjpg" + suffix;

function row(cells) {
  const tr = document.createElement("tr");
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.appendChild(td);
  }
  return tr;
}

function fill(id, rows) {
  $(id).replaceChildren(...rows.map(row));
}

async function getJson(name) {
  const response = await fetch(name + suffix, { cache: "no-store" });
  if (!response.ok) throw new Error(name + ": HTTP " + response.status);
  return response.json();
}

async function poll() {
  try {
    const [stats, latest] = await Promise.all([getJson("stats.json"), getJson("detections.json")]);
    $("fps").textContent = stats.fps.toFixed(1);
    $("frame").textContent = stats.frame ?? "-";
    $("count").textContent = stats.detections ?? 0;
    $("poses").textContent = stats.poses ?? 0;
    $("clients").textContent = stats.clients;
    fill("stages", Object.entries(stats.stages).map(
      ([name, s]) => [name, s.p50.toFixed(2), s.p99.toFixed(2)]));
    fill("dets", (latest.detections || []).map((d) => [
      d.label || String(d.class_id), d.track_id ?? "", d.score.toFixed(2),
      d.box.map((v) => Math.round(v)).join(", ")]));
    fill("classes", (latest.classes || []).map((c) => [c.label || String(c.class_id),
      c.score.toFixed(2)]));
    $("state").textContent = "live";
    $("state").className = "";
  } catch (err) {
    $("state").textContent = "disconnected";
    $("state").className = "down";
  }
  setTimeout(poll, 500);
}
poll();
</script>
</body>
</html>
"""
