// The query console: POST /v1/query with the SQL, show the rows as a table (or the error the
// server names), download the same query as CSV. Ctrl+Enter runs; a table name inserts itself.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("query-config").textContent);
  var sql = document.getElementById("sql");
  var limit = document.getElementById("limit");
  var status = document.getElementById("status");
  var error = document.getElementById("error");
  var result = document.getElementById("result");

  function request(format) {
    var headers = { "content-type": "application/json" };
    if (config.csrf) headers["x-csrf-token"] = config.csrf;
    return fetch(config.root + "/v1/query", {
      method: "POST", headers: headers, credentials: "same-origin",
      body: JSON.stringify({ sql: sql.value, format: format, limit: Number(limit.value || 0) }),
    });
  }
  function problem(response) {
    return response.json().then(function (body) {
      var detail = body.detail;
      if (Array.isArray(detail)) detail = detail.map(function (d) { return d.field + ": " + d.error; }).join("; ");
      throw new Error(response.status + ": " + detail);
    }, function () { throw new Error("HTTP " + response.status); });
  }
  function cell(text, tag) {
    var el = document.createElement(tag);
    el.textContent = text === null ? "" : (typeof text === "object" ? JSON.stringify(text) : String(text));
    if (typeof text === "number") el.className = "num";
    return el;
  }
  function show(doc, seconds) {
    result.textContent = "";
    var head = document.createElement("thead"), row = document.createElement("tr");
    doc.columns.forEach(function (c) { row.appendChild(cell(c, "th")); });
    head.appendChild(row); result.appendChild(head);
    var body = document.createElement("tbody");
    doc.rows.forEach(function (r) {
      var tr = document.createElement("tr");
      r.forEach(function (v) { tr.appendChild(cell(v, "td")); });
      body.appendChild(tr);
    });
    result.appendChild(body);
    var capped = doc.rows.length === Number(limit.value) ? " (the row limit)" : "";
    status.textContent = doc.rows.length.toLocaleString() + " rows" + capped + " in " + seconds.toFixed(2) + " s";
  }
  function run(event) {
    if (event) event.preventDefault();
    error.hidden = true; status.textContent = "running…";
    var started = performance.now();
    request("json").then(function (r) { return r.ok ? r.json() : problem(r); }).then(function (doc) {
      show(doc, (performance.now() - started) / 1000);
    }).catch(function (e) {
      error.textContent = e.message; error.hidden = false; status.textContent = ""; result.textContent = "";
    });
  }
  function csv() {
    error.hidden = true;
    request("csv").then(function (r) { return r.ok ? r.blob() : problem(r); }).then(function (blob) {
      var a = document.createElement("a");
      a.href = URL.createObjectURL(blob); a.download = "query.csv";
      document.body.appendChild(a); a.click(); a.remove();
    }).catch(function (e) { error.textContent = e.message; error.hidden = false; });
  }
  document.getElementById("query-form").addEventListener("submit", run);
  document.getElementById("csv").addEventListener("click", csv);
  sql.addEventListener("keydown", function (e) { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(e); });
  document.querySelectorAll("a.insert").forEach(function (a) {
    a.addEventListener("click", function (e) {
      e.preventDefault();
      var at = sql.selectionStart, name = a.getAttribute("data-name");
      sql.value = sql.value.slice(0, at) + name + sql.value.slice(sql.selectionEnd);
      sql.focus(); sql.selectionStart = sql.selectionEnd = at + name.length;
    });
  });
})();
