// Ticking times on the team pages (display only: no requests, no polling).
// Every <time data-age> was rendered with its age in seconds at render time (negative: in the future);
// we add the seconds elapsed since this script first saw the element, so the browser's clock never
// matters. An agent's status label follows its heartbeat age with the thresholds on #agents.
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

  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:oobAfterSwap", tick);
  setInterval(tick, 1000);
})();
