// fraudflow console: keyboard triage and verdicts; the page works without it for reading.
"use strict";
(function () {
  const HDR = { "X-Fraudflow-Console": "1", "Content-Type": "application/json" };
  const page = document.body.dataset.page;

  function toast(text, kind, ms) {
    const t = document.getElementById("toast");
    t.textContent = text;
    t.className = "show " + (kind || "");
    clearTimeout(t._timer);
    t._timer = setTimeout(() => { t.className = ""; }, ms || 2500);
  }

  async function api(method, path, body) {
    const r = await fetch(path, {
      method, headers: HDR, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); }
    if (!r.ok) {
      const d = data && data.detail;
      throw new Error(typeof d === "string" ? d : (d && d.message) || ("HTTP " + r.status));
    }
    return data;
  }

  function typing(e) {
    const el = e.target;
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
  }

  async function verdict(alertId, label, note) {
    const out = await api("POST", "/api/alerts/" + encodeURIComponent(alertId) + "/verdict", { label, note: note || "" });
    return out;
  }

  function verdictText(label, out) {
    const what = label === "fraud" ? "Marked FRAUD" : "Marked LEGIT";
    if (!out.created) return what + " (already recorded)";
    return what + (out.published ? " · label published" : " · recorded (no labels topic configured)");
  }

  // datetime-local inputs hold UTC wall time; the API reads zone-less times as UTC
  document.querySelectorAll("form.filters").forEach((form) => {
    form.addEventListener("submit", () => {
      form.querySelectorAll("input, select").forEach((el) => { if (!el.value) el.disabled = true; });
    });
  });

  if (page === "queue") {
    const rows = Array.from(document.querySelectorAll("#queue tbody tr.row"));
    let i = rows.length ? 0 : -1;
    const select = (j) => {
      if (!rows.length) return;
      i = Math.max(0, Math.min(rows.length - 1, j));
      rows.forEach((r) => r.classList.remove("sel"));
      rows[i].classList.add("sel");
      rows[i].scrollIntoView({ block: "nearest" });
    };
    select(0);
    rows.forEach((r, j) => r.addEventListener("click", (e) => {
      if (e.target.closest("a")) return;
      select(j); location.href = r.dataset.href;
    }));
    async function mark(label) {
      const r = rows[i];
      if (!r || r.dataset.busy) return;
      r.dataset.busy = "1";
      try {
        const out = await verdict(r.dataset.id, label, "");
        r.classList.remove("open", "fraud", "legit"); r.classList.add(label);
        const pill = r.querySelector("td.status .pill");
        pill.textContent = label; pill.className = "pill " + label;
        toast(verdictText(label, out), label);
        select(i + 1);
      } catch (err) { toast(err.message, "error", 5000); }
      delete r.dataset.busy;
    }
    document.addEventListener("keydown", (e) => {
      if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
      const more = document.getElementById("more");
      switch (e.key) {
        case "j": case "ArrowDown": select(i + 1); break;
        case "k": case "ArrowUp": select(i - 1); break;
        case "Enter": case "o": if (rows[i]) location.href = rows[i].dataset.href; break;
        case "f": mark("fraud"); break;
        case "l": mark("legit"); break;
        case "]": if (more) location.href = more.href; break;
        case "/": e.preventDefault(); document.querySelector("input[name=user_id]").focus(); break;
        default: return;
      }
      e.preventDefault();
    });
  }

  if (page === "alert") {
    const box = document.getElementById("alert");
    const done = box.dataset.done;
    if (done) {
      const [label, id] = done.split(":");
      toast((label === "fraud" ? "Marked FRAUD" : "Marked LEGIT") + " · " + (id || "").slice(0, 10) + "… · next alert", label, 2200);
    }
    const buttons = document.querySelectorAll(".verdict button[data-label]");
    async function mark(label) {
      if (!buttons.length) { toast("Your role cannot record verdicts", "error"); return; }
      buttons.forEach((b) => { b.disabled = true; });
      try {
        const note = document.getElementById("note").value;
        const out = await verdict(box.dataset.id, label, note);
        document.querySelectorAll(".verdict button").forEach((b) => b.classList.toggle("chosen", b.dataset.label === label));
        const st = document.querySelector(".verdict .status .pill");
        st.textContent = label; st.className = "pill " + label;
        const h = document.getElementById("history");
        const none = h.querySelector("tr.none"); if (none) none.remove();
        const v = out.verdict;
        const tr = document.createElement("tr");
        [v.created_at.slice(0, 19), v.label, v.author, v.note, v.published_at ? "published " + v.published_at.slice(0, 19) : "not published"]
          .forEach((text, k) => {
            const td = document.createElement("td");
            if (k === 1) { const s = document.createElement("span"); s.className = "pill " + text; s.textContent = text; td.appendChild(s); }
            else td.textContent = text;
            tr.appendChild(td);
          });
        if (out.created) h.prepend(tr);
        toast(verdictText(label, out), label, 1500);
        const next = box.dataset.next;
        if (next) {
          setTimeout(() => { location.href = next + (next.includes("?") ? "&" : "?") + "done=" + label + ":" + box.dataset.id; }, 700);
        }
      } catch (err) {
        toast(err.message, "error", 6000);
      }
      buttons.forEach((b) => { b.disabled = false; });
    }
    buttons.forEach((b) => b.addEventListener("click", () => mark(b.dataset.label)));
    document.addEventListener("keydown", (e) => {
      if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
      const go = (u) => { if (u) location.href = u; };
      switch (e.key) {
        case "f": mark("fraud"); break;
        case "l": mark("legit"); break;
        case "j": case "n": go(box.dataset.next); break;
        case "k": case "p": go(box.dataset.prev); break;
        case "q": case "Escape": go(box.dataset.queue); break;
        case "u": go(document.querySelector(".title a").href); break;
        default: return;
      }
      e.preventDefault();
    });
  }

  if (page === "rules" && document.getElementById("propose")) {
    const out = document.getElementById("rout");
    const files = () => ({ [document.getElementById("rfile").value]: document.getElementById("rtext").value });
    const show = (html) => { out.innerHTML = html; };
    const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
    document.getElementById("rcheck").addEventListener("click", async () => {
      try {
        const r = await api("POST", "/api/rules/check", { files: files() });
        show(r.ok ? `<p>OK: ${r.rules} rules, version <code>${esc(r.version)}</code></p>`
                  : "<pre class=error>" + r.diagnostics.map((d) => esc(`${d.file}:${d.line}:${d.column}: ${d.message}`)).join("\n") + "</pre>");
      } catch (err) { show("<p class=error>" + esc(err.message) + "</p>"); }
    });
    document.getElementById("rrun").addEventListener("click", async () => {
      const f = document.getElementById("rfrom").value, t = document.getElementById("rto").value;
      if (!f || !t) { show("<p class=error>choose a time range (UTC)</p>"); return; }
      try {
        let job = await api("POST", "/api/rules/backtest", { files: files(), from: f + ":00Z", to: t + ":00Z" });
        while (job.status === "queued" || job.status === "running") {
          show(`<p>${esc(job.phase)} · ${job.records.toLocaleString()} transactions</p><div class=progress><span style="width:${Math.round(job.progress * 100)}%"></span></div>`);
          await new Promise((res) => setTimeout(res, 500));
          job = await api("GET", "/api/rules/backtest/" + job.job_id);
        }
        if (job.status === "failed") { show("<p class=error>" + esc(job.error) + "</p>"); return; }
        const r = job.result;
        show(`<p>${r.transactions.toLocaleString()} transactions: alerts ${r.alerts_current} &rarr; ${r.alerts_proposed};
          adds <b>${r.added}</b> (${r.added_confirmed.fraud} confirmed fraud, ${r.added_confirmed.legit} legit),
          drops <b>${r.dropped}</b> (${r.dropped_confirmed.fraud} confirmed fraud, ${r.dropped_confirmed.legit} legit)</p>` +
          "<table><tr><th>rule</th><th>hits now</th><th>hits proposed</th></tr>" +
          r.rules_changed.map((x) => `<tr><td class=mono>${esc(x.rule_id)}</td><td>${x.hits_current}</td><td>${x.hits_proposed}</td></tr>`).join("") + "</table>");
      } catch (err) { show("<p class=error>" + esc(err.message) + "</p>"); }
    });
  }
})();
