// Department portal and report page. Citizens' text is never inserted as HTML here:
// messages use textContent; the server renders everything else with autoescaping.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const msg = document.getElementById("msg");

  function show(text) {
    if (!msg) { return; }
    msg.textContent = text;
    msg.style.display = "block";
  }

  async function post(number, action, body) {
    const r = await fetch(`/api/department/cases/${encodeURIComponent(number)}/${action}`, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(body),
    });
    if (r.ok) { location.reload(); return; }
    let detail = r.statusText;
    try { detail = (await r.json()).detail || detail; } catch (e) { /* not JSON */ }
    show(`${r.status}: ${detail}`);
  }

  document.querySelectorAll("button[data-sign]").forEach((b) => {
    b.addEventListener("click", () => post(b.dataset.sign, "sign",
      {version: Number(b.dataset.version)}));
  });

  document.querySelectorAll("form.action").forEach((f) => {
    f.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const body = {version: Number(f.dataset.version)};
      new FormData(f).forEach((v, k) => { body[k] = k === "days" ? Number(v) : v; });
      post(f.dataset.number, f.dataset.action, body);
    });
  });

  const data = document.getElementById("chart-data");
  if (data) {
    window.addEventListener("load", () => {
      if (!window.Chart) { return; }
      const d = JSON.parse(data.textContent);
      new window.Chart(document.getElementById("daily"), {
        type: "line",
        data: {labels: d.days, datasets: [{label: "", data: d.filed, borderColor: "#1f4e79"}]},
        options: {plugins: {legend: {display: false}}},
      });
      new window.Chart(document.getElementById("ranking"), {
        type: "bar",
        data: {labels: d.departments, datasets: [{label: "", data: d.scores,
          backgroundColor: "#4a90c2"}]},
        options: {indexAxis: "y", plugins: {legend: {display: false}}},
      });
    });
  }
}());
