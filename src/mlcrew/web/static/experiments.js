// Metric curves of the experiment pages: one Plotly chart per metric, one line per run, from the
// JSON the page carries (#chart-data). Plotly is served by this service (/vendor/plotly.min.js).
(function () {
  "use strict";
  function draw() {
    var data = document.getElementById("chart-data");
    if (!data || typeof Plotly === "undefined") return;
    var charts = JSON.parse(data.textContent);
    document.querySelectorAll(".chart[data-metric]").forEach(function (el) {
      var key = el.getAttribute("data-metric");
      var traces = (charts[key] || []).map(function (t) {
        return { x: t.x, y: t.y, name: t.name, type: "scatter", mode: t.x.length > 1 ? "lines" : "markers" };
      });
      var layout = {
        title: { text: key, font: { size: 14 } },
        margin: { l: 50, r: 10, t: 36, b: 36 },
        height: 280,
        xaxis: { title: { text: "step" } },
        showlegend: traces.length > 1,
        legend: { orientation: "h" },
      };
      Plotly.newPlot(el, traces, layout, { displaylogo: false, responsive: true }).then(function () {
        el.setAttribute("data-drawn", "true");
      });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
