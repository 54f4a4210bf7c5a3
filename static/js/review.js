/* The review queue's keyboard and selection: j/k move the selection (and take the review lock of the
   selected pattern), x ticks it, a approves it, r opens the reject dialog; bulk reject; the queue's
   live re-renders keep what this page had selected and ticked. Decisions themselves are htmx POSTs. */
(function () {
  "use strict";

  // htmx "settles" a swapped element that keeps its id by putting back the class it was rendered
  // with, after htmx:oobAfterSwap: that would drop the selection restored below. Nothing here
  // animates classes on swap, so classes are not settled.
  htmx.config.attributesToSettle = htmx.config.attributesToSettle.filter(function (a) { return a !== "class"; });

  var selectedKey = null;   // data-key ("<team>:<pattern>") of the selected card
  var held = null;          // {key, unlockUrl} of the lock this page last took
  var saved = null;         // page state kept across a re-render of #staged-list

  function cards() {
    var list = document.getElementById("staged-list");
    return list ? Array.prototype.slice.call(list.querySelectorAll("article.pattern")) : [];
  }

  function byKey(key) {
    return cards().filter(function (c) { return c.dataset.key === key; })[0] || null;
  }

  function post(url) {
    // Through htmx: the CSRF header of <body hx-headers> goes along, and error messages are swapped in.
    return htmx.ajax("POST", url, { source: document.body, swap: "none" });
  }

  function say(text) {
    var message = document.getElementById("review-message");
    if (message) {
      message.textContent = text;
      message.className = "review-message review-warn";
    }
  }

  function select(card, takeLock) {
    var previous = selectedKey ? byKey(selectedKey) : null;
    if (previous) previous.classList.remove("selected");
    card.classList.add("selected");
    selectedKey = card.dataset.key;
    card.focus({ preventScroll: true });
    card.scrollIntoView({ block: "nearest" });
    if (!takeLock) return;
    if (held && held.key !== card.dataset.key) post(held.unlockUrl);
    held = { key: card.dataset.key, unlockUrl: card.dataset.unlockUrl };
    post(card.dataset.lockUrl);
  }

  function openReject(list) {
    var dialog = document.getElementById("reject-dialog");
    var targets = document.getElementById("reject-targets");
    targets.textContent = "";
    list.forEach(function (card) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = "selected";
      input.value = card.dataset.key;
      targets.appendChild(input);
    });
    document.getElementById("reject-what").textContent =
      list.length === 1 ? list[0].dataset.name : list.length + " patterns";
    dialog.showModal();
    document.getElementById("reject-reason").focus();
  }

  function ticked() {
    return cards().filter(function (c) { return c.querySelector("input.select:checked"); });
  }

  document.addEventListener("keydown", function (e) {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target.closest && e.target.closest("input:not([type=checkbox]), textarea, select, [contenteditable], dialog[open]")) return;
    var all = cards();
    if (!all.length) return;
    var card = selectedKey ? byKey(selectedKey) : null;
    var i = card ? all.indexOf(card) : -1;
    switch (e.key) {
      case "j": select(all[Math.min(i + 1, all.length - 1)], true); break;
      case "k": select(all[Math.max(i - 1, 0)], true); break;
      case "a": if (card) card.querySelector("button.approve").click(); break;
      case "r": if (card) openReject([card]); break;
      case "x": if (card) { var box = card.querySelector("input.select"); box.checked = !box.checked; } break;
      default: return;
    }
    e.preventDefault();
  });

  document.addEventListener("click", function (e) {
    var target = e.target;
    if (!target.closest) return;
    if (target.closest("[data-reject-selected]")) {
      var list = ticked();
      if (list.length) openReject(list); else say("Tick the patterns to reject first (x or the checkbox).");
      return;
    }
    if (target.closest("#reject-dialog [data-close]")) {
      document.getElementById("reject-dialog").close();
      return;
    }
    var card = target.closest("#staged-list article.pattern");
    if (!card) return;
    if (target.closest("[data-reject]")) {
      select(card, true);
      openReject([card]);
    } else if (!target.closest("button, input, a, summary")) {
      select(card, true);  // clicking a card reviews it (and renews the lock when already selected)
    }
  });

  // Error answers (400/403/404/409/503) carry a message to swap in, like successful ones.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var status = e.detail.xhr.status;
    if (status >= 400 && status !== 401) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });

  // Closing the dialog (sent or cancelled) gives the keyboard back to the queue: focus would stay on
  // the dialog's button, as the card that had it before may have been re-rendered meanwhile.
  document.addEventListener("DOMContentLoaded", function () {
    var dialog = document.getElementById("reject-dialog");
    if (!dialog) return;
    dialog.addEventListener("close", function () {
      var card = selectedKey ? byKey(selectedKey) : null;
      if (card) card.focus({ preventScroll: true });
      else if (dialog.contains(document.activeElement)) document.activeElement.blur();
    });
  });

  document.addEventListener("htmx:afterRequest", function (e) {
    var form = document.getElementById("reject-form");
    if (e.detail.elt !== form || e.detail.xhr.status === 400) return;
    document.getElementById("reject-dialog").close();
    form.reset();
  });

  // A re-render of the queue (after a decision, or live) keeps this page's selection and ticks.
  document.addEventListener("htmx:oobBeforeSwap", function (e) {
    if (!e.detail.target || e.detail.target.id !== "staged-list") return;
    var all = cards();
    saved = {
      ticked: ticked().map(function (c) { return c.dataset.key; }),
      open: all.filter(function (c) { var d = c.querySelector("details"); return d && d.open; })
               .map(function (c) { return c.dataset.key; }),
      index: selectedKey ? all.indexOf(byKey(selectedKey)) : -1
    };
  });

  document.addEventListener("htmx:oobAfterSwap", function () {
    if (!saved || !document.getElementById("staged-list")) return;
    var state = saved;
    saved = null;
    state.ticked.forEach(function (key) { var c = byKey(key); if (c) c.querySelector("input.select").checked = true; });
    state.open.forEach(function (key) { var c = byKey(key); if (c) c.querySelector("details").open = true; });
    if (!selectedKey) return;
    var card = byKey(selectedKey);
    if (card) {
      card.classList.add("selected");
      return;
    }
    selectedKey = null;  // the selected pattern was decided: review the one now in its place
    var all = cards();
    if (all.length && state.index >= 0) select(all[Math.min(state.index, all.length - 1)], true);
  });

  // Display only: a lock badge goes when its lock expires (the server refuses nothing after that).
  setInterval(function () {
    var now = Date.now() / 1000;
    document.querySelectorAll("#staged-list .lock[data-expires]").forEach(function (badge) {
      if (Number(badge.dataset.expires) > now) return;
      var card = badge.closest("article");
      badge.remove();
      if (card) card.classList.remove("locked");
    });
  }, 1000);

  // Leaving the page releases the lock it holds (others need not wait for it to expire).
  window.addEventListener("pagehide", function () {
    if (!held || !navigator.sendBeacon) return;
    var token = "";
    try { token = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (err) { return; }
    var form = new FormData();
    form.append("csrfmiddlewaretoken", token);
    navigator.sendBeacon(held.unlockUrl, form);
    held = null;
  });

  // Coming back to the page: carry on with the pattern this person was reviewing.
  document.addEventListener("DOMContentLoaded", function () {
    var mine = document.querySelector("#staged-list .lock.mine");
    if (mine) select(mine.closest("article"), true);
  });
})();
