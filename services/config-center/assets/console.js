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
    var box = document.getElementById("usage-chart");
    if (!box || !box.dataset.series || typeof uPlot === "undefined") return;
    var s = JSON.parse(box.dataset.series);
    if (!s.t.length) return;
    var width = Math.max(280, box.clientWidth);
    var opts = {
      width: width,
      height: 240,
      series: [
        {},
        { label: "Requests", stroke: "#2563eb", width: 2, points: { show: true, size: 7 } },
        { label: "Cost (USD)", stroke: "#16a34a", width: 2, scale: "usd", points: { show: true, size: 7 } },
      ],
      axes: [
        {},
        { label: "requests" },
        {
          side: 1, scale: "usd", label: "USD", grid: { show: false },
          values: function (u, vals) { return vals.map(function (v) { return "$" + Number(v.toPrecision(2)); }); },
        },
      ],
      scales: {
        x: { time: true, range: [s.from, s.to] },
        y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } },
        usd: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } },
      },
    };
    box.textContent = "";
    new uPlot(opts, [s.t, s.requests, s.cost], box);
  }

  document.addEventListener("DOMContentLoaded", function () {
    copyButtons(document);
    usageChart();
  });
})();
