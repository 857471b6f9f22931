// Live progress: every element with data-progress polls its JSON endpoint and
// updates the fields in place, so the page never reloads. Served as a file
// because the Content-Security-Policy forbids inline scripts.
"use strict";
(function () {
  function poll(el) {
    var last = null;
    function tick() {
      fetch(el.dataset.progress, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) { return; }
          Object.keys(data.counters).forEach(function (k) {
            var f = el.querySelector('[data-field="' + k + '"]');
            if (f) { f.textContent = String(data.counters[k]); }
          });
          var s = el.querySelector('[data-field="status"]');
          if (s) { s.textContent = data.status; }
          var rate = el.querySelector('[data-field="rate"]');
          var now = Date.now(), done = data.counters.delivered + data.counters.bounced + data.counters.failed;
          if (rate && last) {
            var perSec = (done - last.done) * 1000 / Math.max(1, now - last.at);
            rate.textContent = perSec.toFixed(1) + " messages/s";
          }
          last = { at: now, done: done };
        })
        .catch(function () {});
    }
    tick();
    setInterval(tick, 2000);
  }
  document.querySelectorAll("[data-progress]").forEach(poll);
})();
