// The console's only script: live digest progress, chunked CSV import, a segment's live count, copy buttons,
// confirmations.
// Every page works without it; it is served from 'self' so a strict Content-Security-Policy allows it.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var number = new Intl.NumberFormat("en");

  function fill(root, data) {
    Object.keys(data).forEach(function (key) {
      root.querySelectorAll('[data-field="' + key + '"]').forEach(function (el) {
        if (el.tagName === "PROGRESS") { el.value = data[key]; } else { el.textContent = typeof data[key] === "number" ? number.format(data[key]) : data[key]; }
      });
    });
  }

  function json(url, options) {
    options = options || {};
    options.credentials = "same-origin";
    options.headers = Object.assign({ "Accept": "application/json", "X-CSRFToken": csrf }, options.headers || {});
    return fetch(url, options).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    });
  }

  // A digest while it sends: poll its counts every second until nothing is left to send.
  var run = document.querySelector("[data-progress]");
  if (run) {
    var poll = function () {
      json(run.dataset.progress).then(function (p) {
        var bar = run.querySelector('[data-field="bar"]');
        bar.max = p.recipients || 1;
        bar.value = p.recipients ? p.done : 1;
        fill(run, { percent: p.percent, recipients: p.recipients, sent: p.sent, failed: p.failed,
                    skipped: p.skipped, pending: p.pending });
        var badge = run.querySelector('[data-field="status-badge"] .badge');
        badge.textContent = p.status;
        badge.className = "badge " + p.status;
        run.dataset.state = p.status;
        if (p.status === "sent" || (p.status === "cancelled" && p.pending === 0)) { return; }
        setTimeout(poll, 1000);
      }).catch(function () { setTimeout(poll, 3000); });
    };
    setTimeout(poll, 1000);
  }

  // An uploaded CSV: import it a chunk per request, showing the counts as they grow, then show the report.
  // While a worker (or another tab) is at it, the answer says busy: look again in a second.
  var importer = document.querySelector("[data-import-step]");
  if (importer) {
    var step = function () {
      json(importer.dataset.importStep, { method: "POST" }).then(function (s) {
        fill(importer, { percent: s.percent, rows: s.rows, rows_noun: s.rows === 1 ? "row" : "rows",
                         created: s.created, updated: s.updated, suppressed: s.suppressed, erased: s.erased,
                         duplicates: s.duplicates, skipped: s.skipped, mails_owed: s.mails_owed });
        if (s.done) { window.location.reload(); } else if (s.busy) { setTimeout(step, 1000); } else { step(); }
      }).catch(function () {
        fill(importer, { status: "Interrupted: reload the page to carry on (nothing is imported twice)." });
      });
    };
    step();
  }

  // Copy a snippet to the clipboard.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.dataset.copy);
      source.select();
      var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); };
      if (navigator.clipboard) { navigator.clipboard.writeText(source.value).then(done, function () { document.execCommand("copy"); done(); }); }
      else { document.execCommand("copy"); done(); }
    });
  });

  // Ask before a form that cannot be undone.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  });

  // A segment's rules: count the readers they choose as the fields change, and save what was counted.
  var rules = document.querySelector("form[data-live-count]");
  if (rules) {
    var save = document.querySelector('form[data-rules-of="' + rules.id + '"]');
    var pending = null;
    var recount = function () {
      var query = new URLSearchParams(new FormData(rules));
      fetch(rules.dataset.liveCount + "?" + query, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) { return response.json(); })
        .then(function (answer) {
          fill(rules, answer.error ? { count: "–", description: answer.error } : answer);
          save.querySelectorAll("input[data-rule]").forEach(function (input) { input.remove(); });
          query.forEach(function (value, name) {
            var input = document.createElement("input");
            input.type = "hidden"; input.name = name; input.value = value; input.setAttribute("data-rule", "");
            save.appendChild(input);
          });
        }).catch(function () {});
    };
    ["input", "change"].forEach(function (kind) {
      rules.addEventListener(kind, function () { clearTimeout(pending); pending = setTimeout(recount, 250); });
    });
  }

  // "All" ticks or clears every checkbox of a group.
  document.querySelectorAll("[data-check-all]").forEach(function (box) {
    var boxes = document.querySelectorAll('input[name="' + box.dataset.checkAll + '"]');
    box.checked = Array.prototype.every.call(boxes, function (b) { return b.checked; });
    box.addEventListener("change", function () { boxes.forEach(function (b) { b.checked = box.checked; }); });
  });
})();
