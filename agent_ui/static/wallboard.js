// The supervisor wallboard: live over /ws/wallboard, Chinese by default, English on request.
// Only textContent is ever set from data. Supervisors get listen / whisper / barge buttons.
"use strict";
(function () {
  const ZH = {
    title: "12345 热线 · 队列实时监控", connecting: "连接中", live: "实时", lost: "重连中",
    trend: "近几小时趋势", agents: "坐席状态", ext: "分机", state: "状态", since: "持续",
    queues_col: "队列", total: "全部队列", waiting: "排队", longest: "最长等待",
    sl: "服务水平", sl2: "服务水平(含放弃)", abandon: "放弃率", asa: "平均应答",
    aht: "平均处理", answered: "接通/呼入", short: "短放弃", occupancy: "占用率",
    available: "空闲", ringing: "振铃", on_call: "通话", wrap_up: "话后", paused: "暂停",
    unavailable: "离线", logged_in: "签入", listen: "监听", whisper: "耳语", barge: "强插",
    ami_down: "与交换机的连接中断", spy_ok: "已呼叫您的分机", sup_ext: "您的分机号：",
    offered: "呼入", answ: "接通", aband: "放弃", consultation: "咨询", complaint: "投诉",
    priority: "优先", meal: "用餐", training: "培训", after_call_work: "话后处理",
    meeting: "会议", break: "休息", other: "其他",
  };
  const EN = {
    title: "12345 Hotline · live queues", connecting: "connecting", live: "live",
    lost: "reconnecting", trend: "Trend, last hours", agents: "Agents", ext: "Ext.",
    state: "State", since: "For", queues_col: "Queues", total: "All queues",
    waiting: "Waiting", longest: "Longest wait", sl: "Service level", sl2: "SL (incl. abandons)",
    abandon: "Abandon rate", asa: "ASA", aht: "AHT", answered: "Answered/offered",
    short: "Short abandons", occupancy: "Occupancy", available: "Available",
    ringing: "Ringing", on_call: "On call", wrap_up: "Wrap-up", paused: "Paused",
    unavailable: "Unavailable", logged_in: "Logged in", listen: "Listen", whisper: "Whisper",
    barge: "Barge", ami_down: "Connection to the PBX lost", spy_ok: "Calling your phone",
    sup_ext: "Your extension:", offered: "Offered", answ: "Answered", aband: "Abandoned",
    consultation: "Consultation", complaint: "Complaint", priority: "Priority", meal: "Meal",
    training: "Training", after_call_work: "After-call work", meeting: "Meeting",
    break: "Break", other: "Other",
  };
  let lang = localStorage.getItem("lang") === "en" ? "en" : "zh";
  const t = (k) => ((lang === "en" ? EN : ZH)[k] || k);
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const canSupervise = document.querySelector('meta[name="can-supervise"]').content === "yes";
  let last = null;
  let chart = null;

  function el(tag, cls, text) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  }
  const pct = (v) => (v === null || v === undefined ? "–" : (v * 100).toFixed(1) + "%");
  const secs = (v) => (v === null || v === undefined ? "–" : Math.round(v) + "s");
  function dur(s) {
    s = Math.max(0, Math.round(s));
    const m = Math.floor(s / 60);
    return m ? `${m}:${String(s % 60).padStart(2, "0")}` : `${s}s`;
  }
  function fig(label, value, alert) {
    const f = el("div", "fig" + (alert === true ? " alert" : alert === false ? " ok" : ""));
    f.appendChild(el("div", "v", value));
    f.appendChild(el("div", "l", label));
    return f;
  }
  function figures(parent, k, waiting, longest, alerts, agents, occupancy) {
    parent.appendChild(fig(t("waiting"), String(waiting)));
    parent.appendChild(fig(t("longest"), dur(longest), alerts.longest_wait));
    parent.appendChild(fig(t("sl"), pct(k.service_level), alerts.service_level));
    parent.appendChild(fig(t("sl2"), pct(k.service_level_app_queue)));
    parent.appendChild(fig(t("abandon"), pct(k.abandon_rate), alerts.abandon_rate));
    parent.appendChild(fig(t("asa"), secs(k.asa_s)));
    parent.appendChild(fig(t("aht"), secs(k.aht_s)));
    parent.appendChild(fig(t("answered"), `${k.answered}/${k.offered}`));
    parent.appendChild(fig(t("short"), String(k.short_abandoned)));
    if (occupancy !== undefined) parent.appendChild(fig(t("occupancy"), pct(occupancy)));
    const a = agents;
    parent.appendChild(fig(`${t("available")}/${t("logged_in")}`, `${a.available}/${a.logged_in}`));
    parent.appendChild(fig(`${t("on_call")}·${t("ringing")}·${t("wrap_up")}`,
      `${a.on_call}·${a.ringing}·${a.wrap_up}`));
    const reasons = Object.entries(a.paused_by_reason || {}).map(([r, n]) => `${t(r)} ${n}`);
    parent.appendChild(fig(`${t("paused")} ${reasons.join(" ")}`, String(a.paused)));
    parent.appendChild(fig(t("unavailable"), String(a.unavailable), a.unavailable > 0 ? true : undefined));
  }

  function render(s) {
    last = s;
    const total = $("total");
    total.replaceChildren();
    const tt = el("div", "tile" + (Object.values(s.total.alerts).some(Boolean) ? " alert" : ""));
    tt.appendChild(el("h2", "", t("total")));
    figures(tt, s.total.kpis, s.total.waiting, s.total.longest_wait_s, s.total.alerts,
      s.total.agents, s.total.occupancy);
    total.replaceChildren(tt);
    total.style.gridTemplateColumns = "1fr";
    const qs = $("queues");
    qs.replaceChildren();
    for (const q of s.queues) {
      const tile = el("div", "tile" + (Object.values(q.alerts).some(Boolean) ? " alert" : ""));
      tile.appendChild(el("h2", "", `${t(q.name)} · ${q.name}`));
      figures(tile, q.kpis, q.waiting, q.longest_wait_s, q.alerts, q.agents);
      qs.appendChild(tile);
    }
    const body = $("agents").querySelector("tbody");
    body.replaceChildren();
    const now = Date.parse(s.at);
    for (const a of s.agents) {
      const tr = el("tr");
      tr.appendChild(el("td", "", a.extension));
      tr.appendChild(el("td", "st-" + a.state, t(a.state) + (a.reason ? ` · ${t(a.reason)}` : "")));
      tr.appendChild(el("td", "", dur((now - Date.parse(a.since)) / 1000)));
      tr.appendChild(el("td", "", a.queues.map(t).join(" ")));
      const td = el("td");
      if (canSupervise && a.state === "on_call") {
        for (const mode of ["listen", "whisper", "barge"]) {
          const b = el("button", "", t(mode));
          b.addEventListener("click", () => spy(a.extension, mode));
          td.appendChild(b);
        }
      }
      tr.appendChild(td);
      body.appendChild(tr);
    }
    const link = $("link");
    link.className = "link " + (s.ami && s.ami.connected ? "ok" : "bad");
    link.textContent = s.ami && s.ami.connected ? t("live") : t("ami_down");
    drawTrend(s.trend);
  }

  function drawTrend(trend) {
    const labels = trend.buckets.map((b) => new Date(b.start).toLocaleTimeString(
      lang === "en" ? "en-GB" : "zh-CN", { hour: "2-digit", minute: "2-digit" }));
    const data = [
      { label: t("offered"), data: trend.buckets.map((b) => b.offered), borderColor: "#6fb6ff", yAxisID: "y" },
      { label: t("answ"), data: trend.buckets.map((b) => b.answered), borderColor: "#5bd68a", yAxisID: "y" },
      { label: t("aband"), data: trend.buckets.map((b) => b.abandoned), borderColor: "#ff5a5a", yAxisID: "y" },
      { label: t("sl"), data: trend.buckets.map((b) => (b.service_level === null ? null : b.service_level * 100)),
        borderColor: "#ffd166", borderDash: [6, 4], yAxisID: "pct" },
    ];
    if (!window.Chart) return;
    if (!chart) {
      chart = new window.Chart($("trend-chart"), {
        type: "line",
        data: { labels, datasets: data },
        options: {
          animation: false, responsive: true, maintainAspectRatio: false,
          color: "#e8eef5",
          scales: {
            x: { ticks: { color: "#9fb2c8" } },
            y: { beginAtZero: true, ticks: { color: "#9fb2c8", precision: 0 } },
            pct: { position: "right", min: 0, max: 100, ticks: { color: "#ffd166" } },
          },
        },
      });
    } else {
      chart.data.labels = labels;
      chart.data.datasets.forEach((d, i) => { d.data = data[i].data; d.label = data[i].label; });
      chart.update();
    }
  }

  async function spy(ext, mode) {
    let sup = localStorage.getItem("supervisorExtension") || "";
    if (!sup) {
      sup = (window.prompt(t("sup_ext")) || "").trim();
      if (!sup) return;
      localStorage.setItem("supervisorExtension", sup);
    }
    const res = await fetch(`/api/agents/${encodeURIComponent(ext)}/${mode}`, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ supervisor_extension: sup }),
    });
    const body = await res.json().catch(() => ({}));
    $("spy-hint").textContent = res.ok ? `${t(mode)} ${ext}: ${t("spy_ok")} ${sup}` : (body.detail || res.status);
  }

  function connect() {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/wallboard`);
    ws.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      if (msg.type === "wallboard") render(msg.data);
    };
    ws.onclose = () => {
      $("link").className = "link bad";
      $("link").textContent = t("lost");
      setTimeout(connect, 2000);
    };
  }

  function applyLang() {
    document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
    for (const n of document.querySelectorAll("[data-t]")) n.textContent = t(n.dataset.t);
    $("lang").textContent = lang === "en" ? "中文" : "English";
    if (chart) { chart.destroy(); chart = null; }
    if (last) render(last);
  }
  $("lang").addEventListener("click", () => {
    lang = lang === "en" ? "zh" : "en";
    localStorage.setItem("lang", lang);
    applyLang();
  });
  setInterval(() => { $("clock").textContent = new Date().toLocaleTimeString("zh-CN"); }, 1000);
  applyLang();
  fetch("/api/wallboard", { credentials: "same-origin" }).then((r) => {
    if (r.status === 401) { location.href = "/login?next=/wallboard"; return null; }
    return r.json();
  }).then((s) => { if (s && s.total) render(s); connect(); });
})();
