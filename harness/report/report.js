// Edge Harness HTML report: hover tooltips and variant toggles.
// Inlined into the report (no network). User text reaches the page only as
// escaped attributes and is shown with textContent, never parsed as HTML.
(function () {
  "use strict";
  var tip = document.createElement("div");
  tip.className = "tip";
  tip.hidden = true;
  document.body.appendChild(tip);
  document.addEventListener("mouseover", function (e) {
    var el = e.target && e.target.closest ? e.target.closest("[data-tip]") : null;
    if (!el) { tip.hidden = true; return; }
    tip.textContent = el.getAttribute("data-tip");
    tip.hidden = false;
  });
  document.addEventListener("mousemove", function (e) {
    tip.style.left = (e.pageX + 14) + "px";
    tip.style.top = (e.pageY + 14) + "px";
  });

  var toggles = Array.prototype.slice.call(document.querySelectorAll("input.variant-toggle"));
  function apply() {
    var hidden = new Set();
    toggles.forEach(function (box) { if (!box.checked) hidden.add(box.value); });
    document.querySelectorAll("[data-variant]").forEach(function (el) {
      el.classList.toggle("off", hidden.has(el.getAttribute("data-variant")));
    });
    // A Pareto front segment goes with either of its ends.
    document.querySelectorAll("[data-from]").forEach(function (el) {
      el.classList.toggle("off", hidden.has(el.getAttribute("data-from")) || hidden.has(el.getAttribute("data-to")));
    });
  }
  // report.html#hide=int16x8,fp16 opens with those variants hidden: a link to share.
  var match = /(?:^#|&)hide=([^&]*)/.exec(location.hash);
  if (match) {
    var names = new Set(match[1].split(",").map(function (s) {
      try { return decodeURIComponent(s); } catch (err) { return s; }
    }));
    toggles.forEach(function (box) { if (names.has(box.value)) { box.checked = false; } });
  }
  toggles.forEach(function (box) { box.addEventListener("change", apply); });
  apply();
  // A marker for tests and for readers of the DOM: the script ran to the end.
  document.body.setAttribute("data-charts", String(document.querySelectorAll("svg.chart").length));
})();
