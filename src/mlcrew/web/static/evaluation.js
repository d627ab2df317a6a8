// Draws a page's charts from #evaluation-charts or #charts-data (Plotly figures: data + layout).
(function () {
  "use strict";
  function draw() {
    var data = document.getElementById("evaluation-charts") || document.getElementById("charts-data");
    if (!data || typeof Plotly === "undefined") return;
    var charts = JSON.parse(data.textContent);
    document.querySelectorAll(".chart[data-chart]").forEach(function (el) {
      var fig = charts[el.getAttribute("data-chart")];
      var layout = Object.assign({ height: 320, margin: { l: 60, r: 10, t: 40, b: 50 } }, fig.layout);
      Plotly.newPlot(el, fig.data, layout, { displaylogo: false, responsive: true }).then(function () {
        el.setAttribute("data-drawn", "true");
      });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
