// The team page's own behaviour (display only: no requests, no polling).
//
// Ticking times: every <time data-age> was rendered with its age in seconds at render time
// (negative: in the future); we add the seconds elapsed since this script first saw the element, so
// the browser's clock never matters. An agent's status label follows its heartbeat age with the
// thresholds on #agents.
//
// Lists shown newest first (ol[data-limit]: the finished columns, the signal feed) get a finished
// task or a new signal as one entry put at their top (see coordination/dashboard.py,
// ENTRY_TEMPLATES): after each message we keep each such list to its limit, drop an entry repeated
// further down (an event delivered twice, or already in the snapshot) and the "None" placeholder.
(function () {
  "use strict";
  var seen = new WeakMap();

  function human(age) {
    var n = Math.abs(age), text;
    if (n < 90) text = Math.floor(n) + " s";
    else if (n < 5400) text = Math.floor(n / 60) + " min";
    else if (n < 172800) text = Math.floor(n / 3600) + " h";
    else text = Math.floor(n / 86400) + " d";
    return age < 0 ? "in " + text : text + " ago";
  }

  function statusFor(age, list) {
    var active = parseFloat(list.dataset.activeSeconds), idle = parseFloat(list.dataset.idleSeconds);
    return age <= active ? "active" : age <= idle ? "idle" : "gone";
  }

  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll("time[data-age]").forEach(function (el) {
      if (!seen.has(el)) seen.set(el, now);
      var age = parseFloat(el.dataset.age) + (now - seen.get(el));
      var text = human(age);
      if (el.textContent !== text) el.textContent = text;
      var agent = el.closest("li.agent"), list = el.closest("#agents");
      if (agent && list) {
        var status = statusFor(age, list), label = agent.querySelector(".status");
        if (agent.dataset.status !== status) {
          agent.dataset.status = status;
          if (label) { label.textContent = status; label.className = "status status-" + status; }
        }
      }
    });
  }

  function trim(list) {
    var limit = parseInt(list.dataset.limit, 10), ids = new Set(), kept = 0;
    var items = Array.prototype.slice.call(list.children);
    var entries = items.filter(function (li) { return li.id; }).length;
    items.forEach(function (li) {
      if (!li.id) {
        if (entries) li.remove();  // the placeholder of an empty list
      } else if (ids.has(li.id) || kept >= limit) {
        li.remove();
      } else {
        ids.add(li.id);
        kept += 1;
      }
    });
  }

  function afterMessage() {
    document.querySelectorAll("ol[data-limit]").forEach(trim);
    tick();
  }

  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:wsAfterMessage", afterMessage);
  setInterval(tick, 1000);
})();
