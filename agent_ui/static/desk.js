// Agent desk, KB editor, citizen page and login: plain modern JS, no build step.
// Rule: user data (names, descriptions, KB text) is only ever set through textContent or
// element attributes; never innerHTML. KB snippets (server-escaped, <mark> around matches)
// are rebuilt node by node from text and <mark> only.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const t = (key) => (window.I18N ? window.I18N.t(key) : key);
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const CSRF = csrfMeta ? csrfMeta.content : "";

  async function api(method, url, body) {
    const headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRF-Token"] = CSRF;
    const res = await fetch(url, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (!res.ok) {
      const err = new Error((data && data.detail) || res.statusText);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function decodeEntities(s) {
    return s.replace(/&(lt|gt|amp|quot|#x27|#39);/g, (m, e) =>
      ({ lt: "<", gt: ">", amp: "&", quot: '"', "#x27": "'", "#39": "'" })[e]);
  }

  // "a <mark>b</mark> c" (escaped by the server) -> text nodes and <mark> elements.
  function snippetNodes(snippet) {
    const frag = document.createDocumentFragment();
    const parts = String(snippet || "").split(/(<mark>|<\/mark>)/);
    let marked = false;
    for (const part of parts) {
      if (part === "<mark>") { marked = true; continue; }
      if (part === "</mark>") { marked = false; continue; }
      const text = decodeEntities(part.replace(/<[^>]*>/g, ""));
      frag.appendChild(marked ? el("mark", text) : document.createTextNode(text));
    }
    return frag;
  }

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  }

  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.toLocaleString(window.I18N && window.I18N.lang() === "en" ? "en-GB" : "zh-CN",
      { timeZone: "Asia/Shanghai", hour12: false });
  }

  // ------------------------------------------------------------------ every page

  document.addEventListener("DOMContentLoaded", () => {
    const logout = $("logout");
    if (logout) {
      logout.addEventListener("click", async () => {
        try { await api("POST", "/api/auth/logout"); } catch (_) { /* signed out anyway */ }
        location.href = "/login";
      });
    }
    if ($("login-form")) initLogin();
    if ($("desk")) initDesk();
    if ($("kbe-form")) initKbEditor();
    if ($("merge-form")) initMerge();
  });

  // ------------------------------------------------------------------ login

  function initLogin() {
    const form = $("login-form");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      $("login-error").textContent = "";
      try {
        await api("POST", "/api/auth/login",
          { username: $("username").value, password: $("password").value });
        const next = form.dataset.next || "/desk";
        location.href = next.startsWith("/") && !next.startsWith("//") ? next : "/desk";
      } catch (err) {
        $("login-error").textContent = err.status === 429
          ? (window.I18N.lang() === "en" ? "Too many failed attempts; try again later."
            : "失败次数过多，请稍后再试。")
          : (window.I18N.lang() === "en" ? "Wrong username or password." : "用户名或密码错误。");
      }
    });
  }

  // ------------------------------------------------------------------ desk

  const desk = { pop: null, socket: null, retry: 500, categories: [], catIndex: -1,
                 article: null, kbQuery: "" };

  function initDesk() {
    connectSocket();
    initAgentState();
    initKbPane();
    initCaseForm();
    $("btn-new-case").addEventListener("click", openCaseForm);
    $("btn-insert-transcript").addEventListener("click", insertTranscript);
    $("btn-new-case-idle").addEventListener("click", openCaseForm);
    document.addEventListener("keydown", (ev) => {
      if (ev.altKey && (ev.key === "n" || ev.key === "N")) { ev.preventDefault(); openCaseForm(); }
      else if (ev.altKey && (ev.key === "k" || ev.key === "K")) { ev.preventDefault(); $("kb-search").focus(); }
      else if ((ev.ctrlKey || ev.metaKey) && (ev.key === "s" || ev.key === "S")) {
        if (!$("case-panel").hidden) { ev.preventDefault(); $("case-form").requestSubmit(); }
      }
    });
  }

  function connectSocket() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/ws/desk`);
    desk.socket = ws;
    ws.addEventListener("open", () => {
      desk.retry = 500;
      setWsState("ws.open");
    });
    ws.addEventListener("message", (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      onMessage(msg);
    });
    ws.addEventListener("close", () => {
      setWsState("ws.closed");
      setTimeout(connectSocket, desk.retry);
      desk.retry = Math.min(desk.retry * 2, 10000);
    });
  }

  function setWsState(key) {
    const node = $("ws-state");
    node.setAttribute("data-i18n", key);
    node.textContent = t(key);
    document.body.dataset.ws = key;
  }

  function onMessage(msg) {
    switch (msg.type) {
      case "screen_pop": showPop(msg); break;
      case "transcript": addTranscript(msg); break;
      case "transcription_status": showTranscriptionStatus(msg); break;
      case "suggestions": renderSuggestions(msg.suggestions || []); break;
      case "kb_update": onKbUpdate(msg); break;
      case "agent_event": onAgentEvent(msg.event || {}); break;
      default: break;
    }
  }

  function showPop(pop) {
    const sameCall = desk.transcriptOf && desk.transcriptOf === pop.call.contact_id;
    desk.pop = pop;
    $("screen-pop").hidden = false;
    $("pop-caller").textContent = pop.call.caller || t("pop.unknown");
    $("pop-state").textContent = t(`pop.${pop.call.state}`);
    const name = $("pop-citizen-name");
    const tags = $("pop-citizen-tags");
    clear(tags);
    if (pop.citizen) {
      name.textContent = pop.citizen.name || `#${pop.citizen.id}`;
      name.href = `/citizens/${encodeURIComponent(pop.citizen.id)}`;
      for (const tag of pop.citizen.tags || []) tags.appendChild(el("span", tag, "tag"));
    } else {
      name.textContent = t("pop.unknown");
      name.removeAttribute("href");
    }
    $("pop-ivr").textContent = (pop.ivr_path || [])
      .map((s) => s.step + (s.digit ? `:${s.digit}` : "") + (s.queue ? `→${s.queue}` : ""))
      .join(" → ");
    $("pop-queue").textContent = pop.call.queue || "";
    const cases = $("pop-open-cases");
    clear(cases);
    for (const c of pop.open_cases || []) {
      const li = el("li");
      const a = el("a", c.number);
      a.href = `/cases/${encodeURIComponent(c.number)}`;
      li.appendChild(a);
      li.appendChild(document.createTextNode(` ${c.type_label} · ${c.title} · ${c.status_label}`));
      if (c.handle_by) {
        li.appendChild(el("span", ` · ${fmtTime(c.handle_by)}`, c.overdue ? "overdue" : "muted"));
      }
      cases.appendChild(li);
    }
    const contacts = $("pop-contacts");
    clear(contacts);
    for (const c of pop.contacts || []) {
      contacts.appendChild(el("li",
        `${fmtTime(c.started_at)} · ${c.channel} · ${c.queue || ""} · ${c.outcome}`));
    }
    if (!sameCall) {
      clear($("pop-transcript"));  // a new call (the answered pop repeats the ringing one)
      desk.partials = {};
      $("pop-transcript-status").textContent = "";
      delete $("pop-transcript-status").dataset.state;
    }
    desk.transcriptOf = pop.call.contact_id;
    renderSuggestions(pop.suggestions || []);
  }

  function renderSuggestions(items) {
    const list = $("pop-suggestions");
    clear(list);
    for (const s of items) list.appendChild(kbItem(s));
  }

  // Live transcript: finals are lines the agent can tick and insert into the description;
  // the partial of each speaker is one grey line, replaced as it grows, removed by its final.
  function speakerLabel(speaker) {
    const key = speaker === "agent" ? "tr.agent" : speaker === "caller" ? "tr.caller" : "tr.unknown";
    const node = el("span", t(key), "who");
    node.setAttribute("data-i18n", key);  // follows the language switch
    return node;
  }

  function addTranscript(msg) {
    const pane = $("pop-transcript");
    const speaker = msg.speaker === "agent" ? "agent" : msg.speaker === "caller" ? "caller" : "";
    desk.partials = desk.partials || {};
    const old = desk.partials[speaker];
    if (!msg.final) {
      const line = old || el("p", null, "seg partial");
      line.dataset.speaker = speaker;
      clear(line);
      line.appendChild(speakerLabel(speaker));
      line.appendChild(el("span", msg.text, "text"));
      if (!old) { pane.appendChild(line); desk.partials[speaker] = line; }
    } else {
      if (old) { old.remove(); delete desk.partials[speaker]; }
      const line = el("label", null, "seg final");
      line.dataset.speaker = speaker;
      const box = document.createElement("input");
      box.type = "checkbox";
      box.className = "pick";
      line.appendChild(box);
      line.appendChild(speakerLabel(speaker));
      line.appendChild(el("span", msg.text, "text"));
      if (msg.delayed) line.classList.add("delayed");
      // Finals go above the live partials, in arrival order.
      const firstPartial = pane.querySelector(".seg.partial");
      pane.insertBefore(line, firstPartial);
    }
    pane.scrollTop = pane.scrollHeight;
  }

  function showTranscriptionStatus(msg) {
    if (msg.contact_id && desk.pop && String(msg.contact_id) !== String(desk.pop.call.contact_id)) return;
    const node = $("pop-transcript-status");
    const key = `tr.${msg.state}`;
    node.dataset.state = msg.state || "";
    node.setAttribute("data-i18n", key);
    node.textContent = t(key) === key ? String(msg.state || "") : t(key);
    node.title = msg.reason || "";
  }

  function insertTranscript() {
    const picked = [...document.querySelectorAll("#pop-transcript .seg.final")]
      .filter((line) => line.querySelector("input.pick").checked);
    if (!picked.length) return;
    if ($("case-panel").hidden || $("case-form").hidden) openCaseForm();
    const text = picked.map((line) =>
      `${line.querySelector(".who").textContent}：${line.querySelector(".text").textContent}`)
      .join("\n");
    const box = $("case-description");
    const joined = box.value ? `${box.value}\n${text}` : text;
    box.value = joined.slice(0, box.maxLength > 0 ? box.maxLength : joined.length);
    for (const line of picked) line.querySelector("input.pick").checked = false;
    box.focus();
  }

  // ---- agent state (the queue brain's API when present; read-only otherwise)

  async function initAgentState() {
    const hint = $("state-hint");
    const buttons = ["btn-login-queue", "btn-pause", "btn-unpause", "btn-logout-queue"];
    try {
      const state = await api("GET", "/api/agents/me");
      showAgentState(state);
      const actions = { "btn-login-queue": "login", "btn-pause": "pause",
                        "btn-unpause": "unpause", "btn-logout-queue": "logout" };
      for (const id of buttons) {
        $(id).addEventListener("click", async () => {
          try { showAgentState(await api("POST", `/api/agents/me/${actions[id]}`, {})); }
          catch (err) { hint.textContent = err.message; }
        });
      }
    } catch (_) {
      for (const id of buttons) $(id).disabled = true;
      hint.textContent = window.I18N.lang() === "en"
        ? "Queue control is not available on this server; state shown from call events."
        : "本服务器暂不支持队列控制，状态来自通话事件。";
    }
  }

  function showAgentState(state) {
    if (!state) return;
    const node = $("agent-state");
    const key = `agent.${state.state || "unknown"}`;
    node.setAttribute("data-i18n", key);  // follows the language switch
    node.textContent = t(key) === key ? String(state.state || "") : t(key);
    node.dataset.state = state.state || "";
    if (state.reason) node.title = state.reason;
  }

  function onAgentEvent(event) {
    if (event.type === "agent_state_changed") showAgentState(event);
    if (desk.pop && event.type === "agent_completed") {
      $("pop-state").textContent = window.I18N.lang() === "en" ? "ended" : "已结束";
    }
  }

  // ---- KB pane

  function kbItem(hit) {
    const li = el("li");
    const a = el("a", hit.title);
    a.href = "#";
    a.className = "kb-hit";
    a.dataset.id = hit.id;
    a.addEventListener("click", (ev) => { ev.preventDefault(); openArticle(hit.id); });
    li.appendChild(a);
    const snip = el("div", null, "muted");
    snip.appendChild(snippetNodes(hit.snippet));
    li.appendChild(snip);
    return li;
  }

  function initKbPane() {
    const input = $("kb-search");
    const run = debounce(() => searchKb(input.value), 200);
    input.addEventListener("input", run);
    $("btn-copy-answer").addEventListener("click", copyAnswer);
  }

  async function searchKb(q) {
    desk.kbQuery = q;
    const list = $("kb-results");
    if (!q.trim()) { clear(list); return; }
    try {
      const hits = await api("GET", `/api/kb/search?q=${encodeURIComponent(q)}&limit=8`);
      if (q !== desk.kbQuery) return;  // a newer query is on its way
      clear(list);
      for (const hit of hits) list.appendChild(kbItem(hit));
    } catch (err) {
      $("kb-notice").textContent = err.message;
    }
  }

  async function openArticle(id) {
    try {
      const art = await api("GET", `/api/kb/articles/${encodeURIComponent(id)}`);
      desk.article = art;
      $("kb-article").hidden = false;
      $("kb-article-title").textContent = art.title;
      $("kb-article-question").textContent = art.question || "";
      $("kb-article-answer").textContent = art.answer;
    } catch (err) {
      $("kb-notice").textContent = err.message;
    }
  }

  async function copyAnswer() {
    if (!desk.article) return;
    const text = desk.article.answer;
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {
      const area = el("textarea", text);
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    $("kb-notice").textContent = t("kb.copied");
    const answer = $("case-answer");
    if (!$("case-panel").hidden && !answer.value) answer.value = text;
  }

  function onKbUpdate(msg) {
    $("kb-notice").textContent = `${t("kb.updated")} ${msg.title || msg.external_id}`;
    if (desk.kbQuery.trim()) searchKb(desk.kbQuery);
    if (desk.article && desk.article.id === msg.external_id) {
      if (msg.action === "retired") { $("kb-article").hidden = true; desk.article = null; }
      else openArticle(msg.external_id);
    }
  }

  // ---- case form

  async function initCaseForm() {
    try {
      const depts = await api("GET", "/api/departments");
      const sel = $("case-department");
      sel.appendChild(el("option", "—", ""));
      for (const d of depts) {
        const opt = el("option", d.name);
        opt.value = d.code;
        sel.appendChild(opt);
      }
    } catch (_) { /* the form still files without a department */ }
    const search = $("case-category-search");
    const run = debounce(() => searchCategories(search.value), 150);
    search.addEventListener("input", run);
    search.addEventListener("focus", run);
    search.addEventListener("keydown", (ev) => {
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        const n = desk.categories.length;
        if (!n) return;
        desk.catIndex = (desk.catIndex + (ev.key === "ArrowDown" ? 1 : n - 1)) % n;
        highlightCategory();
      } else if (ev.key === "Enter" && desk.catIndex >= 0) {
        ev.preventDefault();
        chooseCategory(desk.categories[desk.catIndex]);
      }
    });
    for (const radio of document.querySelectorAll('input[name="resolution"]')) {
      radio.addEventListener("change", syncResolution);
    }
    $("case-type").addEventListener("change", () => {
      if ($("case-type").value !== "consultation") $("res-dispatch").checked = true;
      syncResolution();
    });
    $("case-form").addEventListener("submit", saveCase);
    const recheck = debounce(checkDuplicates, 500);
    for (const id of ["case-title", "case-description", "case-location", "case-phone"]) {
      $(id).addEventListener("input", recheck);
    }
  }

  // ------------------------------------------------------------------ duplicates (重复件)

  function dupItem(d, mergeFrom) {
    const li = el("li");
    const link = el("a", d.number);
    link.href = `/cases/${encodeURIComponent(d.number)}`;
    link.target = "_blank";
    li.appendChild(link);
    li.appendChild(el("span", ` ${d.title} · ${d.status} · `));
    const reasons = d.reasons.map((r) => t(`dup.${r}`));
    li.appendChild(el("span", reasons.join(" / "), "muted"));
    if (mergeFrom) {
      const b = el("button", t("dup.merge"));
      b.type = "button";
      b.className = "dup-merge";
      b.addEventListener("click", async () => {
        b.disabled = true;
        try {
          await api("POST", `/api/cases/${encodeURIComponent(mergeFrom)}/merge`, { into: d.number });
          li.appendChild(el("strong", ` ✓ ${d.number}`));
          for (const other of document.querySelectorAll(".dup-merge")) other.disabled = true;
        } catch (err) { li.appendChild(el("span", ` ${err.message}`, "error")); b.disabled = false; }
      });
      li.appendChild(b);
    }
    return li;
  }

  function showDuplicates(boxId, listId, dups, mergeFrom) {
    const list = $(listId);
    clear(list);
    for (const d of dups || []) list.appendChild(dupItem(d, mergeFrom));
    $(boxId).hidden = !(dups && dups.length);
  }

  async function checkDuplicates() {
    const description = $("case-description").value.trim();
    if (description.length < 4) { showDuplicates("dup-box", "dup-list", []); return; }
    const opt = (v) => (v && v.trim() ? v.trim() : null);
    const citizen = $("case-citizen-id").value;
    try {
      const dups = await api("POST", "/api/duplicates/check", {
        title: $("case-title").value.trim(), description,
        citizen_id: citizen ? Number(citizen) : null,
        citizen_phone: citizen ? null : opt($("case-phone").value),
        location_text: opt($("case-location").value),
      });
      showDuplicates("dup-box", "dup-list", dups);
    } catch (_) { /* a suggestion only: filing goes on without it */ }
  }

  function syncResolution() {
    const answered = $("res-answered").checked;
    $("answer-row").hidden = !answered;
    $("case-department").disabled = answered;
  }

  async function searchCategories(q) {
    try {
      desk.categories = await api("GET", `/api/categories?q=${encodeURIComponent(q)}&limit=12`);
    } catch (_) { desk.categories = []; }
    desk.catIndex = desk.categories.length ? 0 : -1;
    const list = $("category-results");
    clear(list);
    desk.categories.forEach((c, i) => {
      const li = el("li", c.label);
      li.dataset.code = c.code;
      li.addEventListener("mousedown", (ev) => { ev.preventDefault(); chooseCategory(desk.categories[i]); });
      list.appendChild(li);
    });
    highlightCategory();
  }

  function highlightCategory() {
    [...$("category-results").children].forEach((li, i) =>
      li.classList.toggle("active", i === desk.catIndex));
  }

  function chooseCategory(c) {
    $("case-category-code").value = c.code;
    $("case-category-search").value = c.label;
    $("case-category-chosen").textContent = c.department_name ? `→ ${c.department_name}` : "";
    if (c.department_code) $("case-department").value = c.department_code;
    clear($("category-results"));
    desk.categories = [];
  }

  function openCaseForm() {
    const pop = desk.pop;
    $("case-panel").hidden = false;
    $("case-saved").hidden = true;
    $("case-form").hidden = false;
    $("case-form").reset();
    $("case-category-code").value = "";
    $("case-category-chosen").textContent = "";
    $("case-error").textContent = "";
    showDuplicates("dup-box", "dup-list", []);
    $("case-contact-id").value = pop && pop.call.contact_id ? pop.call.contact_id : "";
    $("case-citizen-id").value = pop && pop.citizen ? pop.citizen.id : "";
    $("case-phone").value = pop && pop.call.caller && !pop.call.caller.includes("*")
      ? pop.call.caller : "";
    $("case-channel").value = pop && pop.call.channel ? pop.call.channel : "phone";
    syncResolution();
    $("case-title").focus();
  }

  async function saveCase(ev) {
    ev.preventDefault();
    $("case-error").textContent = "";
    const resolution = $("res-answered").checked ? "answered_directly" : "dispatch";
    const opt = (v) => (v && v.trim() ? v.trim() : null);
    const body = {
      case: {
        type: $("case-type").value,
        title: $("case-title").value,
        description: $("case-description").value,
        category_code: opt($("case-category-code").value),
        department_code: resolution === "dispatch" ? opt($("case-department").value) : null,
        location_text: opt($("case-location").value),
        priority: opt($("case-priority").value),
        channel: $("case-channel").value,
        citizen_id: $("case-citizen-id").value ? Number($("case-citizen-id").value) : null,
        citizen_phone: $("case-citizen-id").value ? null : opt($("case-phone").value),
        contact_id: $("case-contact-id").value ? Number($("case-contact-id").value) : null,
      },
      resolution,
      answer: resolution === "answered_directly" ? opt($("case-answer").value) : null,
    };
    const button = $("btn-save-case");
    button.disabled = true;
    try {
      const filed = await api("POST", "/api/desk/cases", body);
      $("case-form").hidden = true;
      $("case-saved").hidden = false;
      $("case-number").textContent = filed.case.number;
      $("case-saved-status").textContent =
        filed.status_label + (filed.department ? ` · ${filed.department}` : "");
      showDuplicates("dup-saved-box", "dup-saved-list", filed.possible_duplicates,
        filed.case.number);
    } catch (err) {
      $("case-error").textContent = err.message;
    } finally {
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ KB editor

  const kbe = { current: null };

  function initKbEditor() {
    const filter = $("kbe-filter");
    filter.addEventListener("input", debounce(() => loadArticles(filter.value), 200));
    $("kbe-new").addEventListener("click", () => { kbe.current = null; fillEditor(null); });
    $("kbe-form").addEventListener("submit", saveDraft);
    $("kbe-retire").addEventListener("click", retireArticle);
    loadArticles("");
  }

  async function loadArticles(q) {
    const list = $("kbe-list");
    const items = await api("GET", `/api/kb/articles?q=${encodeURIComponent(q)}`);
    clear(list);
    for (const a of items) {
      const li = el("li");
      const link = el("a", a.title);
      link.href = "#";
      link.addEventListener("click", (ev) => { ev.preventDefault(); openForEdit(a.id); });
      li.appendChild(link);
      li.appendChild(el("span", ` · ${a.status} · v${a.published_version_no || "-"}`, "muted"));
      list.appendChild(li);
    }
  }

  async function openForEdit(id) {
    kbe.current = await api("GET", `/api/kb/articles/${encodeURIComponent(id)}`);
    fillEditor(kbe.current);
  }

  function fillEditor(art) {
    $("kbe-error").textContent = "";
    $("kbe-id").value = art ? art.id : "";
    $("kbe-id").readOnly = !!art;
    const latest = art && art.versions && art.versions.length ? art.versions[0] : art;
    $("kbe-title").value = latest ? latest.title : "";
    $("kbe-question").value = latest ? latest.question : "";
    $("kbe-answer").value = latest ? latest.answer : "";
    $("kbe-tags").value = latest ? (latest.tags || []).join(", ") : "";
    const list = $("kbe-versions");
    clear(list);
    for (const v of (art && art.versions) || []) {
      const li = el("li", `v${v.version_no} · ${v.status} · ${fmtTime(v.created_at)} · ${v.title} `);
      if (v.status === "draft") {
        const b = el("button", t("kbe.publish"));
        b.type = "button";
        b.className = "kbe-publish";
        b.dataset.version = v.version_no;
        b.addEventListener("click", () => publishVersion(art.id, v.version_no));
        li.appendChild(b);
      }
      list.appendChild(li);
    }
  }

  async function saveDraft(ev) {
    ev.preventDefault();
    $("kbe-error").textContent = "";
    try {
      const saved = await api("POST", "/api/kb/articles", {
        external_id: $("kbe-id").value.trim() || null,
        title: $("kbe-title").value,
        question: $("kbe-question").value,
        answer: $("kbe-answer").value,
        tags: $("kbe-tags").value.split(/[,，]/).map((s) => s.trim()).filter(Boolean),
      });
      $("kbe-status").textContent = `${saved.id} v${saved.version.version_no}`;
      await openForEdit(saved.id);
      loadArticles($("kbe-filter").value);
    } catch (err) { $("kbe-error").textContent = err.message; }
  }

  async function publishVersion(id, versionNo) {
    try {
      kbe.current = await api("POST",
        `/api/kb/articles/${encodeURIComponent(id)}/versions/${versionNo}/publish`, {});
      fillEditor(kbe.current);
      $("kbe-status").textContent = `${id} v${versionNo} ✓`;
      loadArticles($("kbe-filter").value);
    } catch (err) { $("kbe-error").textContent = err.message; }
  }

  async function retireArticle() {
    if (!kbe.current) return;
    try {
      kbe.current = await api("POST",
        `/api/kb/articles/${encodeURIComponent(kbe.current.id)}/retire`, {});
      fillEditor(kbe.current);
      loadArticles($("kbe-filter").value);
    } catch (err) { $("kbe-error").textContent = err.message; }
  }

  // ------------------------------------------------------------------ citizen merge

  function initMerge() {
    $("merge-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      $("merge-error").textContent = "";
      const keep = Number($("citizen").dataset.citizenId);
      try {
        await api("POST", "/api/citizens/merge",
          { keep_id: keep, merge_id: Number($("merge-id").value) });
        location.reload();
      } catch (err) { $("merge-error").textContent = err.message; }
    });
  }
})();
