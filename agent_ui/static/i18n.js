// Chinese (simplified) by default; English on request (remembered in localStorage).
// Elements carry data-i18n="key" (text) or data-i18n-placeholder="key"; the Chinese text in the
// page is the default, the English table below replaces it. Only textContent is ever set.
"use strict";
(function () {
  const EN = {
    "brand": "12345 Citizen Service Hotline",
    "nav.desk": "Agent desk", "nav.kb": "KB editor", "nav.department": "Our cases",
    "nav.supervision": "Supervision",
    "logout": "Sign out", "none": "None",
    "login.title": "Sign in", "login.username": "Username", "login.password": "Password",
    "login.submit": "Sign in",
    "state.title": "My state", "state.extension": "Extension", "state.state": "State",
    "state.socket": "Connection", "state.unknown": "unknown", "state.login": "Log in to queues",
    "state.pause": "Pause", "state.unpause": "Resume", "state.logout": "Log out of queues",
    "ws.connecting": "connecting", "ws.open": "live", "ws.closed": "reconnecting",
    "pop.title": "Call", "pop.citizen": "Citizen", "pop.ivr": "IVR path", "pop.queue": "Queue",
    "pop.open_cases": "Open cases", "pop.contacts": "Recent contacts (all channels)",
    "pop.suggestions": "Knowledge-base suggestions", "pop.transcript": "Live transcript",
    "pop.new_case": "New case (Alt+N)", "pop.unknown": "Unknown caller",
    "pop.ringing": "ringing", "pop.connected": "connected",
    "case.title": "New case", "case.phone": "Caller number", "case.channel": "Channel",
    "case.type": "Type", "case.priority": "Priority", "case.category": "Category",
    "case.category_ph": "Type to search categories", "case.subject": "Title",
    "case.location": "Location", "case.description": "Description",
    "case.answered": "Answered directly (consultation resolved)",
    "case.dispatch": "Dispatch to department", "case.answer": "Answer given",
    "dup.title": "Possible duplicates (same caller, or nearby with similar text, last 30 days):",
    "dup.after": "The new case may duplicate these; you can merge it:",
    "dup.merge": "Merge into this", "dup.merged": "Merged into",
    "dup.same_citizen": "same caller", "dup.nearby": "nearby", "dup.similar_text": "similar text",
    "case.save": "Save (Ctrl+S)", "case.saved": "Case saved. Number:", "case.trail": "Audit trail",
    "case.transcript": "Call transcript",
    "channel.phone": "Phone", "channel.sms": "SMS", "channel.web": "Web", "channel.wechat": "WeChat",
    "channel.weibo": "Weibo",
    "type.consultation": "Consultation", "type.complaint": "Complaint", "type.report": "Report",
    "type.help": "Request for help", "type.suggestion": "Suggestion", "type.praise": "Praise",
    "priority.default": "From category", "priority.normal": "Normal", "priority.urgent": "Urgent",
    "priority.critical": "Critical",
    "kb.title": "Knowledge base", "kb.placeholder": "Search the knowledge base (Alt+K)",
    "kb.copy": "Copy answer", "kb.copied": "Copied", "kb.updated": "Knowledge base updated:",
    "kbe.articles": "Articles", "kbe.filter": "Filter by title", "kbe.new": "New article",
    "kbe.edit": "Edit", "kbe.id": "ID", "kbe.title": "Title", "kbe.question": "Question",
    "kbe.answer": "Answer", "kbe.tags": "Tags (comma-separated)", "kbe.save": "Save draft",
    "kbe.retire": "Retire", "kbe.versions": "Versions", "kbe.publish": "Publish",
    "citizen.phones": "Phones", "citizen.address": "Address", "citizen.merged": "Merged records",
    "citizen.cases": "Cases", "citizen.contacts": "Contacts (all channels)",
    "citizen.merge": "Merge a duplicate record", "citizen.merge_id": "Merge citizen record no.",
    "citizen.merge_btn": "Merge",
    "col.number": "Number", "col.type": "Type", "col.title": "Title", "col.description": "Description",
    "col.status": "Status", "col.channel": "Channel", "col.created": "Filed", "col.deadline": "Due",
    "col.time": "Time", "col.from": "From", "col.queue": "Queue", "col.outcome": "Outcome",
    "col.ivr": "IVR path", "col.department": "Department",
    "agent.available": "available", "agent.ringing": "ringing", "agent.on_call": "on a call",
    "agent.wrap_up": "wrap-up", "agent.paused": "paused", "agent.unavailable": "phone offline",
    "agent.logged_out": "logged out",
    "tr.caller": "Caller", "tr.agent": "Agent", "tr.unknown": "?",
    "tr.running": "transcribing", "tr.interrupted": "transcription interrupted",
    "tr.off": "transcription off", "tr.insert": "Insert ticked lines into the description",
  };
  const ZH = {
    "ws.open": "在线", "ws.closed": "重连中", "pop.unknown": "未知来电", "pop.ringing": "振铃",
    "pop.connected": "通话中", "kb.copied": "已复制", "kb.updated": "知识库已更新：",
    "kbe.publish": "发布",
    "agent.available": "空闲", "agent.ringing": "振铃", "agent.on_call": "通话中",
    "agent.wrap_up": "话后整理", "agent.paused": "小休", "agent.unavailable": "话机离线",
    "agent.logged_out": "未签入",
    "dup.merge": "合并到此工单", "dup.same_citizen": "同一来电人", "dup.nearby": "地点相近",
    "dup.similar_text": "内容相似",
    "tr.caller": "市民", "tr.agent": "坐席", "tr.unknown": "？", "tr.running": "转写中",
    "tr.interrupted": "转写已中断", "tr.off": "转写未启用",
  };
  const defaults = new WeakMap();
  function lang() { return localStorage.getItem("hotline.lang") === "en" ? "en" : "zh"; }
  function t(key) {
    if (lang() === "en" && key in EN) return EN[key];
    return ZH[key] || key;
  }
  function apply(root) {
    const en = lang() === "en";
    document.documentElement.lang = en ? "en" : "zh-CN";
    (root || document).querySelectorAll("[data-i18n]").forEach((el) => {
      if (!defaults.has(el)) defaults.set(el, el.textContent);
      const key = el.getAttribute("data-i18n");
      // Keys set by scripts (states) have a Chinese entry; page text falls back to itself.
      el.textContent = en && key in EN ? EN[key] : (key in ZH ? ZH[key] : defaults.get(el));
    });
    (root || document).querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
      if (!el.dataset.zhPlaceholder) el.dataset.zhPlaceholder = el.placeholder;
      const key = el.getAttribute("data-i18n-placeholder");
      el.placeholder = en && key in EN ? EN[key] : el.dataset.zhPlaceholder;
    });
    const sw = document.getElementById("lang-switch");
    if (sw) sw.textContent = en ? "中文" : "English";
  }
  function toggle() {
    localStorage.setItem("hotline.lang", lang() === "en" ? "zh" : "en");
    apply();
  }
  window.I18N = { t, apply, toggle, lang };
  document.addEventListener("DOMContentLoaded", () => {
    apply();
    const sw = document.getElementById("lang-switch");
    if (sw) sw.addEventListener("click", toggle);
  });
})();
