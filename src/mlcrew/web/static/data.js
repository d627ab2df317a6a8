// The data pages: the lineage graph of the datasets page (tables placed left to right by depth,
// an arrow from each table to the tables made from it) and the small histograms of a dataset's
// profile. Data comes from JSON the page carries; Plotly is served by this service.
(function () {
  "use strict";
  function lineage() {
    var el = document.getElementById("lineage");
    var data = document.getElementById("graph-data");
    if (!el || !data || typeof Plotly === "undefined") return;
    var graph = JSON.parse(data.textContent);
    var byDepth = {};
    graph.nodes.forEach(function (n) { (byDepth[n.depth] = byDepth[n.depth] || []).push(n); });
    var pos = {};
    Object.keys(byDepth).forEach(function (d) {
      byDepth[d].forEach(function (n, i) { pos[n.name] = { x: Number(d), y: -i + (byDepth[d].length - 1) / 2 }; });
    });
    var annotations = graph.edges.map(function (e) {
      return { x: pos[e.to].x, y: pos[e.to].y, ax: pos[e.from].x, ay: pos[e.from].y, xref: "x", yref: "y",
               axref: "x", ayref: "y", showarrow: true, arrowhead: 3, arrowsize: 1.2, standoff: 14, startstandoff: 14,
               arrowcolor: "#9aa0a6", text: "" };
    });
    var trace = {
      x: graph.nodes.map(function (n) { return pos[n.name].x; }),
      y: graph.nodes.map(function (n) { return pos[n.name].y; }),
      text: graph.nodes.map(function (n) { return n.name + "@" + n.version; }),
      customdata: graph.nodes.map(function (n) { return n.name; }),
      hovertext: graph.nodes.map(function (n) { return n.kind + " · " + n.rows.toLocaleString() + " rows"; }),
      hoverinfo: "text", mode: "markers+text", textposition: "top center", type: "scatter",
      marker: { size: 16, color: graph.nodes.map(function (n) { return n.kind === "source" ? "#137333" : "#2b59c3"; }) },
    };
    var depth = Object.keys(byDepth).length;
    var layout = {
      height: Math.max(260, 70 * Math.max.apply(null, Object.keys(byDepth).map(function (d) { return byDepth[d].length; }))),
      margin: { l: 30, r: 30, t: 20, b: 20 }, annotations: annotations, showlegend: false,
      xaxis: { visible: false, range: [-0.5, depth - 0.5] }, yaxis: { visible: false },
    };
    Plotly.newPlot(el, [trace], layout, { displaylogo: false, responsive: true }).then(function () {
      el.setAttribute("data-drawn", "true");
      el.on("plotly_click", function (ev) {
        var root = document.querySelector("link[rel=stylesheet]").getAttribute("href").replace(/\/static\/style\.css$/, "");
        if (ev.points.length) window.location.href = root + "/data/" + ev.points[0].customdata;
      });
    });
  }
  function sparks() {
    var data = document.getElementById("spark-data");
    if (!data || typeof Plotly === "undefined") return;
    var charts = JSON.parse(data.textContent);
    document.querySelectorAll(".spark[data-column]").forEach(function (el) {
      var counts = charts[el.getAttribute("data-column")] || [];
      var trace = { y: counts, type: "bar", marker: { color: "#2b59c3" }, hoverinfo: "y" };
      var layout = { height: 40, width: 160, margin: { l: 0, r: 0, t: 0, b: 0 }, bargap: 0.05,
                     xaxis: { visible: false }, yaxis: { visible: false } };
      Plotly.newPlot(el, [trace], layout, { displayModeBar: false, staticPlot: true }).then(function () {
        el.setAttribute("data-drawn", "true");
      });
    });
  }
  function draw() { lineage(); sparks(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
