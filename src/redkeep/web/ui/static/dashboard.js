// redkeep dashboard: actions as JSON POSTs with the CSRF token, live regions, confirm dialog.
// Plain JavaScript, no dependencies; loaded from this origin only (the CSP forbids inline code).
(function () {
  "use strict";

  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var statusEl = document.getElementById("status");
  var dialog = document.getElementById("confirm");
  var toggle = document.getElementById("live-toggle");
  var liveState = document.getElementById("live-state");
  var interval = Number(document.body.getAttribute("data-refresh")) || 2000;
  var timer = null;
  var statusTimer = null;

  function say(text, isError) {
    if (!statusEl) return;
    statusEl.textContent = text;
    statusEl.className = "status shown" + (isError ? " bad" : "");
    clearTimeout(statusTimer);
    statusTimer = setTimeout(function () { statusEl.className = "status"; }, isError ? 10000 : 5000);
  }

  function fields(form) {
    var data = {};
    new FormData(form).forEach(function (value, key) { data[key] = String(value); });
    return data;
  }

  function ask(message) {
    if (!dialog || typeof dialog.showModal !== "function") {
      return Promise.resolve(window.confirm(message));
    }
    return new Promise(function (resolve) {
      document.getElementById("confirm-text").textContent = message;
      dialog.returnValue = "";
      dialog.addEventListener("close", function done() {
        dialog.removeEventListener("close", done);
        resolve(dialog.returnValue === "ok");
      });
      dialog.showModal();
      var cancel = dialog.querySelector('button[value="cancel"]');
      if (cancel) cancel.focus();
    });
  }

  async function submit(form) {
    var body = fields(form);
    var question = form.getAttribute("data-confirm");
    if (question) {
      question = question.replace(/\{(\w+)\}/g, function (m, k) { return k in body ? body[k] : m; });
      if (!(await ask(question))) return;
    }
    var url = form.getAttribute("data-action");
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    try {
      var response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "application/json" },
        body: JSON.stringify(body),
      });
      var data = {};
      try { data = await response.json(); } catch (e) { data = {}; }
      if (!response.ok) {
        var error = data.error || {};
        say(error.message || "The request failed (HTTP " + response.status + ").", true);
        if (response.status === 401 && url !== "/ui/login") window.location.reload();
        return;
      }
      if (data.redirect) {
        window.location.assign(data.redirect);
        return;
      }
      say(data.message || "Done.");
      await refreshAll(true);
    } catch (e) {
      say("The service did not answer: " + e.message, true);
    } finally {
      buttons.forEach(function (b) { b.disabled = false; });
    }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-action")) return;
    event.preventDefault();
    submit(form);
  });

  function regions() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-live]"));
  }

  async function refresh(region, force) {
    var focused = document.activeElement;
    var inside = focused && focused !== document.body && region.contains(focused);
    if (inside && !force) return true; // never pull a control away from the keyboard
    var response = await fetch(window.location.pathname + window.location.search, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { "X-Redkeep-Fragment": region.getAttribute("data-live") },
    });
    if (response.status === 401) {
      window.location.reload();
      return false;
    }
    if (!response.ok) return false;
    var html = await response.text();
    if (html !== region.innerHTML) region.innerHTML = html;
    if (inside) {
      var heading = document.querySelector("main h1");
      if (heading) heading.focus();
    }
    return true;
  }

  async function refreshAll(force) {
    var results = await Promise.all(regions().map(function (r) {
      return refresh(r, force).catch(function () { return false; });
    }));
    if (liveState) {
      var ok = results.every(Boolean);
      liveState.textContent = ok ? "· updated " + new Date().toLocaleTimeString() : "· not reachable";
    }
  }

  function live() {
    return !toggle || toggle.checked;
  }

  function schedule() {
    clearTimeout(timer);
    timer = null;
    if (document.hidden || !live() || regions().length === 0) return;
    timer = setTimeout(async function () {
      timer = null;
      if (document.hidden || !live()) return;
      await refreshAll(false);
      schedule();
    }, interval);
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
    } else if (live()) {
      refreshAll(false).then(schedule);
    }
  });

  if (toggle) {
    try { toggle.checked = window.localStorage.getItem("redkeep-live") !== "off"; } catch (e) { /* storage off */ }
    toggle.addEventListener("change", function () {
      try { window.localStorage.setItem("redkeep-live", toggle.checked ? "on" : "off"); } catch (e) { /* storage off */ }
      if (liveState) liveState.textContent = toggle.checked ? "" : "· paused";
      schedule();
    });
    if (!toggle.checked && liveState) liveState.textContent = "· paused";
  }

  schedule();
})();
