// The console's own script: copy buttons and the usage chart. Loaded from
// /ui/assets (the CSP allows no inline script); the pages work without it.
(function () {
  "use strict";

  function copyButtons(root) {
    root.querySelectorAll("button[data-copy]").forEach(function (btn) {
      btn.hidden = false;
      btn.addEventListener("click", function () {
        var target = document.getElementById(btn.getAttribute("data-copy"));
        if (!target) return;
        var text = target.value || target.textContent;
        var done = function () {
          btn.textContent = "Copied";
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () {
            target.select();
            document.execCommand("copy");
            done();
          });
        } else {
          target.select();
          document.execCommand("copy");
          done();
        }
      });
    });
  }

  function usageChart() {
    var data = document.getElementById("usage-series");
    var box = document.getElementById("usage-chart");
    if (!data || !box || typeof uPlot === "undefined") return;
    var s = JSON.parse(data.textContent);
    if (!s.t.length) return;
    var width = Math.max(280, box.clientWidth);
    var opts = {
      width: width,
      height: 240,
      series: [
        {},
        { label: "Requests", stroke: "#2563eb", width: 2 },
        { label: "Cost (USD)", stroke: "#16a34a", width: 2, scale: "usd" },
      ],
      axes: [{}, { label: "requests" }, { side: 1, scale: "usd", label: "USD", grid: { show: false } }],
      scales: { x: { time: true } },
    };
    box.textContent = "";
    new uPlot(opts, [s.t, s.requests, s.cost], box);
  }

  document.addEventListener("DOMContentLoaded", function () {
    copyButtons(document);
    usageChart();
  });
})();
