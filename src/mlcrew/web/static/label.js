// The labeling page: one item at a time, keyboard first. Talks to /v1/labeling only.
// The next item is fetched ahead (?ahead=1, its image preloaded) so moving on is instant; a
// submit that failed is retried with the same label, which the API stores once.
(() => {
  "use strict";

  const config = JSON.parse(document.getElementById("label-config").textContent);
  const API = config.root + "/v1/labeling";
  const MULTI = config.task === "multi";
  const KEYS = new Map();
  for (const c of config.classes) if (c.key) KEYS.set(c.key.toLowerCase(), c.name);

  const $ = (id) => document.getElementById(id);
  const buttons = Array.from(document.querySelectorAll("#classes .choice"));

  let current = null; // the task shown
  let ahead = []; // prefetched tasks
  let selected = new Set(); // chosen class names
  let fromSuggestion = false; // the selection is the suggestion, untouched
  let shownAt = 0;
  let busy = false; // a write is in flight: keys wait for it
  let seq = 0; // the latest refill; older answers are dropped

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function detailOf(doc, res) {
    const detail = doc && doc.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) return detail.map((p) => `${p.field}: ${p.error}`).join("; ");
    return `the server answered ${res.status} ${res.statusText}`.trim();
  }

  async function call(method, path, body) {
    const headers = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (config.csrf) headers["x-csrf-token"] = config.csrf;
    let res;
    try {
      res = await fetch(API + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch (err) {
      throw new ApiError(0, "could not reach the server (network error)");
    }
    let doc = null;
    try {
      doc = await res.json();
    } catch (err) {
      doc = null;
    }
    if (!res.ok) throw new ApiError(res.status, detailOf(doc, res));
    return doc;
  }

  // ------------------------------------------------------------------ messages and progress

  function say(text, kind) {
    const box = $("message");
    box.replaceChildren();
    box.hidden = !text;
    box.className = kind || "";
    if (!text) return;
    box.append(text);
  }

  function sayError(err, retry) {
    if (err.status === 401) {
      const box = $("message");
      say("You are signed out. ", "bad");
      const link = document.createElement("a");
      link.href = `${config.root}/login?next=${encodeURIComponent(config.root + "/label")}`;
      link.textContent = "Sign in again";
      box.append(link);
      return;
    }
    let text = err.message;
    if (err.status === 0 || err.status >= 500) text += `; ${retry || "try again"}`;
    say(text.charAt(0).toUpperCase() + text.slice(1), "bad");
  }

  function showProgress(p) {
    if (!p) return;
    const parts = [`${p.labeled} labeled`];
    if (p.skipped) parts.push(`${p.skipped} skipped`);
    $("progress").textContent = parts.join(" · ");
    $("progress").dataset.labeled = String(p.labeled);
  }

  // ------------------------------------------------------------------ showing a task

  function cell(tag, text) {
    const node = document.createElement(tag);
    node.textContent = text === null || text === undefined ? "" : typeof text === "object" ? JSON.stringify(text) : String(text);
    return node;
  }

  function fieldsTable(fields) {
    const table = document.createElement("table");
    table.className = "fields";
    const body = document.createElement("tbody");
    for (const [name, value] of fields) {
      const row = document.createElement("tr");
      row.append(cell("th", name), cell("td", value));
      body.append(row);
    }
    table.append(body);
    return table;
  }

  // Small images (an 8x8 digit) are scaled up by a whole factor with crisp pixels.
  function fitImage(img) {
    const box = $("item").clientWidth || 480;
    const w = img.naturalWidth;
    const h = img.naturalHeight;
    if (!w || !h) return;
    const limit = Math.min(box, 400, Math.max(160, window.innerHeight * 0.45));
    const factor = Math.max(1, Math.floor(Math.min(limit / w, limit / h)));
    if (w * factor <= limit) {
      img.style.width = `${w * factor}px`;
      img.style.height = `${h * factor}px`;
    } else {
      img.style.width = "100%";
      img.style.height = "auto";
    }
    img.dataset.scale = String(factor);
  }

  function renderItem(task) {
    const item = $("item");
    item.replaceChildren();
    const payload = task.payload || {};
    const rest = Object.entries(payload).filter(([name]) => name !== config.show);
    if (config.show === "image") {
      const image = payload.image;
      if (image && image.url) {
        const img = document.createElement("img");
        img.className = "item-image";
        img.alt = `item ${task.item}`;
        img.addEventListener("load", () => fitImage(img));
        img.addEventListener("error", () => say(`The image of item ${task.item} did not load; skip it (S) or flag it (F).`, "bad"));
        img.src = image.url;
        item.append(img);
      } else {
        item.append(cell("p", "(this item has no image)"));
      }
    } else if (config.show === "text") {
      const text = cell("div", payload.text ?? "(empty)");
      text.className = "item-text";
      item.append(text);
    }
    const fields = config.show === "rows" ? Object.entries(payload) : rest;
    if (fields.length) item.append(fieldsTable(fields));
  }

  function asSet(label) {
    if (label === null || label === undefined) return new Set();
    return new Set(Array.isArray(label) ? label : [label]);
  }

  function render(task) {
    current = task;
    $("loading").hidden = task !== undefined;
    $("idle").hidden = task !== null;
    $("task").hidden = !task;
    if (task === null) {
      $("idle-text").textContent = "Nothing left to label; thank you.";
      $("again").focus();
    }
    if (!task) return;
    $("item-id").textContent = task.item;
    $("item-state").textContent = task.label !== null && task.label !== undefined ? "· back for another look (undo)" : "";
    $("review-note").hidden = !task.note;
    $("review-note").textContent = task.note ? `Reviewer's note: ${task.note}` : "";
    renderItem(task);
    const s = task.suggestion;
    if (task.label !== null && task.label !== undefined) {
      selected = asSet(task.label);
      fromSuggestion = false;
    } else if (s && s.label !== null && s.label !== undefined) {
      selected = asSet(s.label);
      fromSuggestion = true;
    } else {
      selected = new Set();
      fromSuggestion = false;
    }
    const box = $("suggestion");
    box.hidden = !s;
    if (s) {
      const score = typeof s.score === "number" ? ` (score ${s.score.toFixed(2)})` : "";
      box.replaceChildren("Suggested: ");
      const name = document.createElement("strong");
      name.textContent = asSet(s.label).size ? Array.from(asSet(s.label)).join(", ") : "none";
      box.append(name, `${score}. Enter confirms it; a class key changes it.`);
      box.dataset.label = name.textContent;
    }
    showSelection();
    shownAt = performance.now();
    if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
  }

  function showSelection() {
    for (const b of buttons) {
      const on = selected.has(b.dataset.class);
      b.classList.toggle("selected", on);
      b.classList.toggle("suggested", on && fromSuggestion);
      b.setAttribute("aria-pressed", on ? "true" : "false");
    }
  }

  function preload(tasks) {
    for (const t of tasks) {
      const image = t.payload && t.payload.image;
      if (config.show === "image" && image && image.url) new Image().src = image.url;
    }
  }

  // ------------------------------------------------------------------ moving through the queue

  async function refill(show) {
    const mine = ++seq;
    if (show) render(undefined);
    let doc;
    try {
      doc = await call("GET", "/next?ahead=1");
    } catch (err) {
      if (mine !== seq) return;
      sayError(err, "press Enter to check again");
      if (show) {
        render(null);
        $("idle-text").textContent = "The next item could not be loaded.";
      }
      return;
    }
    if (mine !== seq) return;
    showProgress(doc.progress);
    if (show || !current || !doc.task || doc.task.id !== current.id) render(doc.task);
    ahead = doc.ahead.filter((t) => !current || t.id !== current.id);
    preload(ahead);
  }

  function advance() {
    const next = ahead.shift();
    if (next) {
      render(next);
      refill(false);
      return Promise.resolve();
    }
    return refill(true);
  }

  async function exclusive(work) {
    if (busy) return;
    busy = true;
    document.body.classList.add("busy");
    try {
      await work();
    } finally {
      busy = false;
      document.body.classList.remove("busy");
    }
  }

  function pick(name) {
    if (!current || busy) return;
    if (MULTI) {
      if (fromSuggestion) selected = new Set(selected);
      if (selected.has(name)) selected.delete(name);
      else selected.add(name);
    } else {
      selected = new Set([name]);
    }
    fromSuggestion = false;
    say("");
    showSelection();
  }

  function clearChoice() {
    if (!current || busy) return;
    selected = new Set();
    fromSuggestion = false;
    showSelection();
  }

  function submit() {
    if (!current) {
      if ($("idle").hidden === false) return exclusive(() => refill(true));
      return;
    }
    return exclusive(async () => {
      if (selected.size === 0) {
        say(MULTI ? "Pick at least one class first (its key toggles it)." : "Pick a class first: press its key.", "bad");
        return;
      }
      const task = current;
      const label = MULTI ? Array.from(selected).sort() : Array.from(selected)[0];
      const seconds = Math.min(86400, (performance.now() - shownAt) / 1000);
      const body = { label, confirmed: fromSuggestion, seconds: Math.round(seconds * 1000) / 1000 };
      try {
        await call("POST", `/tasks/${task.id}/labels`, body);
      } catch (err) {
        if (err.status === 409 || err.status === 404) {
          sayError(err);
          await advance();
          return;
        }
        sayError(err, "press Enter to send it again (it is stored once)");
        return;
      }
      say("");
      await advance();
    });
  }

  function skip() {
    if (!current) return;
    return exclusive(async () => {
      try {
        await call("POST", `/tasks/${current.id}/skip`, {});
        say("");
      } catch (err) {
        sayError(err, "press S to try again");
        if (err.status !== 409 && err.status !== 404) return;
      }
      await advance();
    });
  }

  function flag() {
    if (!current || busy) return;
    const dialog = $("flag-dialog");
    $("flag-note").value = "";
    dialog.returnValue = "";
    dialog.showModal();
    $("flag-note").focus();
  }

  function sendFlag(note) {
    if (!current) return;
    return exclusive(async () => {
      try {
        await call("POST", `/tasks/${current.id}/flag`, { note: note || null });
      } catch (err) {
        sayError(err, "press F to flag it again");
        if (err.status !== 409 && err.status !== 404) return;
        await advance();
        return;
      }
      say("Flagged; thank you for reporting it.", "ok");
      await advance();
    });
  }

  function undo() {
    return exclusive(async () => {
      let doc;
      try {
        doc = await call("POST", "/undo");
      } catch (err) {
        sayError(err, "press U to try again");
        return;
      }
      if (!doc.task) {
        say("Nothing to undo: your last label was reviewed already, or there is none.", "bad");
        return;
      }
      seq++; // a refill in flight would not know of this
      if (current && current.id !== doc.task.id) ahead.unshift(current);
      ahead = ahead.filter((t) => t.id !== doc.task.id);
      say("Your last label is taken back: change it or press Enter to keep it.", "ok");
      render(doc.task);
      try {
        showProgress(await call("GET", "/me"));
      } catch (err) {
        /* progress only: the next refill brings it */
      }
    });
  }

  // ------------------------------------------------------------------ keys and clicks

  const ACTIONS = new Map([["enter", submit], ["s", skip], ["u", undo], ["f", flag], ["escape", clearChoice]]);

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.isComposing) return;
    if ($("flag-dialog").open) return;
    const target = ev.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT" || target.isContentEditable)) return;
    // Links and the header's buttons (sign out) keep their own Enter.
    if (target && target.closest && target.closest("a, header")) return;
    const key = ev.key === "Enter" ? "enter" : ev.key === "Escape" ? "escape" : ev.key.toLowerCase();
    const action = ACTIONS.get(key) || (KEYS.has(key) ? () => pick(KEYS.get(key)) : null);
    if (!action) return;
    ev.preventDefault();
    // A held key must not submit (or confirm the suggestions of) the items after this one.
    if (!ev.repeat) action();
  });

  for (const b of buttons) b.addEventListener("click", () => pick(b.dataset.class));
  $("submit").addEventListener("click", () => submit());
  $("skip").addEventListener("click", () => skip());
  $("undo").addEventListener("click", () => undo());
  $("flag").addEventListener("click", () => flag());
  $("again").addEventListener("click", () => exclusive(() => refill(true)));
  $("flag-dialog").addEventListener("close", () => {
    if ($("flag-dialog").returnValue === "flag") sendFlag($("flag-note").value.trim());
  });

  // The guidelines stay open or closed as the labeler left them (per project).
  const guide = document.querySelector("#guidelines details");
  const remembered = `mlcrew.guidelines.${config.root || "/"}`;
  try {
    if (localStorage.getItem(remembered) === "closed") guide.open = false;
    guide.addEventListener("toggle", () => localStorage.setItem(remembered, guide.open ? "open" : "closed"));
  } catch (err) {
    /* storage refused (private mode): the guidelines start open */
  }

  exclusive(() => refill(true));
})();
