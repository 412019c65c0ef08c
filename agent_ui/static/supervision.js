// Supervisors' page: coordination and dissatisfaction review through the lifecycle API.
// Messages use textContent only; the server renders everything else with autoescaping.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const msg = document.getElementById("msg");

  document.querySelectorAll("form.sv-action").forEach((f) => {
    f.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = {version: Number(f.dataset.version)};
      new FormData(f).forEach((v, k) => { body[k] = v; });
      const url = `/api/cases/${encodeURIComponent(f.dataset.number)}/${f.dataset.action}`;
      const r = await fetch(url, {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
        body: JSON.stringify(body),
      });
      if (r.ok) { location.reload(); return; }
      let detail = r.statusText;
      try { detail = (await r.json()).detail || detail; } catch (e) { /* not JSON */ }
      msg.textContent = `${r.status}: ${detail}`;
      msg.style.display = "block";
    });
  });
}());
