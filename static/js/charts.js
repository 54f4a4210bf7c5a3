// Sparkline read-outs: the server draws each chart (inline SVG); hovering one shows the value under
// the pointer, read from the chart's data-values (comma-separated numbers) and data-unit. No library.
// The page is live: the charts are replaced after each probe round (hx-swap-oob over the WebSocket),
// so every new chart is attached after each swap. Attached charts are remembered in a WeakSet, not
// with a class: htmx "settles" class attributes of swapped elements that keep their id.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var attached = new WeakSet();

  function format(value, unit) {
    if (unit === "ms") {
      if (value >= 1000) return (value / 1000).toFixed(2) + " s";
      return (value < 10 ? value.toFixed(2) : value.toFixed(1)) + " ms";
    }
    return Math.round(value) + " " + unit;
  }

  function attach(svg) {
    if (attached.has(svg)) return;
    attached.add(svg);
    var values = (svg.dataset.values || "").split(",").filter(Boolean).map(Number);
    var line = svg.querySelector("polyline");
    if (!values.length || !line) return;
    var points = line.getAttribute("points").trim().split(/\s+/).map(function (p) { return p.split(",").map(Number); });
    var figure = svg.closest("figure");
    var readout = figure ? figure.querySelector(".readout") : null;
    var idle = readout ? readout.textContent : "";
    var dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("r", "3");
    dot.setAttribute("class", "hover-point");
    dot.style.display = "none";
    svg.appendChild(dot);

    svg.addEventListener("pointermove", function (event) {
      var box = svg.getBoundingClientRect();
      var width = svg.viewBox.baseVal.width || box.width;
      var x = (event.clientX - box.left) * width / box.width;
      var best = 0;
      for (var i = 1; i < points.length; i++) {
        if (Math.abs(points[i][0] - x) < Math.abs(points[best][0] - x)) best = i;
      }
      dot.setAttribute("cx", points[best][0]);
      dot.setAttribute("cy", points[best][1]);
      dot.style.display = "";
      var text = "sample " + (best + 1) + " of " + values.length + ": " + format(values[best], svg.dataset.unit || "");
      if (readout) readout.textContent = text; else svg.setAttribute("aria-description", text);
    });
    svg.addEventListener("pointerleave", function () {
      dot.style.display = "none";
      if (readout) readout.textContent = idle;
    });
  }

  function attachAll() {
    document.querySelectorAll("svg.spark[data-values]").forEach(attach);
  }

  document.addEventListener("DOMContentLoaded", attachAll);
  // After each WebSocket message (all its swaps settled), and after any other out-of-band swap.
  document.addEventListener("htmx:wsAfterMessage", attachAll);
  document.addEventListener("htmx:oobAfterSwap", attachAll);
})();
