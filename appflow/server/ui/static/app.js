// appflow dashboard: live updates (server-sent events), the diff loader, busy buttons,
// the install form's target picker and its in-browser JSON Schema check.
// No framework and no third-party code: everything here is served by appflow itself.
"use strict";

(function () {
  // -- live updates -------------------------------------------------------------------------

  const STATE_CLASS = /^s-/;

  function setCell(td, cell, withRevision) {
    const shown = cell.state + (withRevision && cell.revision ? " r" + cell.revision : "");
    // A silent cluster is never shown as Ready: its state is only the last one known.
    const text = cell.offline ? "Offline (last known: " + shown + ")" : shown;
    const state = cell.offline ? "s-Offline" : "s-" + cell.state;
    const title = cell.offline ? "the cluster is offline; last known state" : cell.message || "";
    if (td.textContent.trim() === text && td.classList.contains(state) && (td.title || "") === title) return;
    for (const c of Array.from(td.classList)) if (STATE_CLASS.test(c) || c === "none") td.classList.remove(c);
    td.classList.add(state);
    td.textContent = text;
    if (title) td.title = title; else td.removeAttribute("title");
    td.classList.add("changed");
    setTimeout(() => td.classList.remove("changed"), 1500);
  }

  function applyCells(cells) {
    const grid = document.getElementById("grid");
    let columns = null;
    if (grid) {
      columns = {};
      grid.querySelectorAll("thead th[data-cluster]").forEach((th, i) => { columns[th.dataset.cluster] = i + 2; });
    }
    for (const cell of cells) {
      if (grid && columns[cell.cluster] !== undefined) {
        const row = grid.querySelector('tbody tr[data-app="' + CSS.escape(cell.app) + '"]');
        if (row && row.children[columns[cell.cluster]]) setCell(row.children[columns[cell.cluster]], cell, true);
      }
      const line = document.querySelector('#deployments tr[data-app="' + CSS.escape(cell.app) + '"][data-cluster="' + CSS.escape(cell.cluster) + '"] td.state');
      if (line) setCell(line, cell, false);
    }
  }

  function addEvent(e) {
    const table = document.getElementById("events");
    if (!table || table.querySelector('tr[data-event="' + e.id + '"]')) return;
    const body = table.tBodies[0];
    const empty = body.querySelector("tr.empty");
    if (empty) empty.remove();
    const tr = document.createElement("tr");
    const values = [e.time.replace("T", " ").replace("+00:00", " UTC"), e.kind, e.app || "–", e.cluster || "–", e.trigger || "–", e.outcome || "–", e.message];
    values.forEach((v, i) => {
      const td = document.createElement("td");
      if (i === 2 && e.app) {
        const a = document.createElement("a");
        a.href = "/ui/apps/" + encodeURIComponent(e.app);
        a.textContent = e.app;
        td.appendChild(a);
      } else td.textContent = v;
      if (i === 6) td.className = "msg";
      tr.appendChild(td);
    });
    tr.dataset.event = e.id;
    tr.classList.add("changed");
    body.insertBefore(tr, body.firstChild);
    while (body.rows.length > 200) body.deleteRow(body.rows.length - 1);
  }

  function stream(url) {
    if (!window.EventSource) return;
    const live = document.getElementById("live");
    const source = new EventSource(url);
    source.addEventListener("open", () => { if (live) { live.textContent = "● live"; live.className = "live on"; } });
    source.addEventListener("error", () => { if (live) { live.textContent = "○ reconnecting"; live.className = "live off"; } });
    source.addEventListener("cells", (m) => applyCells(JSON.parse(m.data)));
    source.addEventListener("appflow", (m) => addEvent(JSON.parse(m.data)));
    source.addEventListener("signout", () => {
      source.close();
      window.location.assign("/ui/login?ended=1");
    });
  }

  // -- forms ------------------------------------------------------------------------------------

  function busy(form) {
    form.addEventListener("submit", (ev) => {
      if (ev.defaultPrevented) return;
      if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) { ev.preventDefault(); return; }
      const button = form.querySelector('button[type="submit"]');
      if (button) {
        // Disabled after the submit is under way, so the button's value is still sent.
        setTimeout(() => { button.disabled = true; button.textContent = form.dataset.busy; }, 0);
      }
    });
  }

  // -- JSON Schema: the subset catalog schemas use ---------------------------------------------
  // type, enum, const, properties, required, additionalProperties, propertyNames, items,
  // minimum, maximum, minLength, maxLength, pattern, allOf, anyOf, oneOf, not, if/then/else,
  // $ref to #/$defs or #/definitions. Errors carry the value's path, as the server's do.

  function typeOf(v) {
    if (v === null) return "null";
    if (Array.isArray(v)) return "array";
    if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
    return typeof v;
  }

  function typeOk(v, t) {
    const actual = typeOf(v);
    return actual === t || (t === "number" && actual === "integer");
  }

  function show(v) { return typeof v === "string" ? "'" + v + "'" : JSON.stringify(v); }

  function equal(a, b) { return JSON.stringify(a) === JSON.stringify(b); }

  function resolve(schema, root) {
    let s = schema, guard = 0;
    while (s && typeof s.$ref === "string" && s.$ref.startsWith("#/") && guard++ < 10) {
      let node = root;
      for (const part of s.$ref.slice(2).split("/")) node = (node || {})[part];
      const rest = Object.assign({}, s);
      delete rest.$ref;
      s = Object.assign({}, node || {}, rest);
    }
    return s;
  }

  function validate(value, schema, root, path, errors) {
    if (schema === true || schema === undefined) return;
    if (schema === false) { errors.push({ path, message: "is not allowed" }); return; }
    schema = resolve(schema, root);
    const where = path.join(".") || "(top)";
    const push = (message) => errors.push({ path, message: where + ": " + message });
    if (schema.type !== undefined) {
      const types = Array.isArray(schema.type) ? schema.type : [schema.type];
      if (!types.some((t) => typeOk(value, t))) { push(show(value) + " is not of type " + types.map((t) => "'" + t + "'").join(", ")); return; }
    }
    if (schema.enum && !schema.enum.some((e) => equal(e, value))) push(show(value) + " is not one of " + JSON.stringify(schema.enum));
    if ("const" in schema && !equal(schema.const, value)) push(show(value) + " should be " + show(schema.const));
    if (typeof value === "string") {
      const n = Array.from(value).length;
      if (schema.minLength !== undefined && n < schema.minLength) push(show(value) + (schema.minLength === 1 ? " should be non-empty" : " is too short (at least " + schema.minLength + ")"));
      if (schema.maxLength !== undefined && n > schema.maxLength) push(show(value) + " is too long (at most " + schema.maxLength + ")");
      if (schema.pattern !== undefined) {
        let re = null;
        try { re = new RegExp(schema.pattern, "u"); } catch (_) {
          try { re = new RegExp(schema.pattern); } catch (__) { re = null; }
        }
        if (re && !re.test(value)) push(show(value) + " does not match '" + schema.pattern + "'");
      }
    }
    if (typeof value === "number") {
      if (schema.minimum !== undefined && value < schema.minimum) push(value + " is less than the minimum of " + schema.minimum);
      if (schema.maximum !== undefined && value > schema.maximum) push(value + " is greater than the maximum of " + schema.maximum);
    }
    if (typeOf(value) === "object") {
      const props = schema.properties || {};
      for (const key of schema.required || []) if (!(key in value)) errors.push({ path: path.concat([key]), message: path.concat([key]).join(".") + ": is required but not set" });
      for (const [key, v] of Object.entries(value)) {
        if (schema.propertyNames) validate(key, schema.propertyNames, root, path.concat([key]), errors);
        if (key in props) validate(v, props[key], root, path.concat([key]), errors);
        else if (schema.additionalProperties === false) errors.push({ path: path.concat([key]), message: path.concat([key]).join(".") + ": unknown key; allowed keys: " + Object.keys(props).sort().join(", ") });
        else if (schema.additionalProperties && typeof schema.additionalProperties === "object") validate(v, schema.additionalProperties, root, path.concat([key]), errors);
      }
    }
    if (Array.isArray(value) && schema.items) value.forEach((v, i) => validate(v, schema.items, root, path.concat([i]), errors));
    for (const sub of schema.allOf || []) validate(value, sub, root, path, errors);
    const passes = (sub) => { const e = []; validate(value, sub, root, path, e); return e.length === 0; };
    if (schema.anyOf && !schema.anyOf.some(passes)) push("matches none of the allowed forms");
    if (schema.oneOf && schema.oneOf.filter(passes).length !== 1) push("must match exactly one allowed form");
    if (schema.not && passes(schema.not)) push("is not allowed");
    if (schema.if !== undefined) {
      if (passes(schema.if)) { if (schema.then !== undefined) validate(value, schema.then, root, path, errors); }
      else if (schema.else !== undefined) validate(value, schema.else, root, path, errors);
    }
  }

  // -- the install form ---------------------------------------------------------------------------

  function readJson(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function merge(base, over) {
    if (typeOf(base) !== "object" || typeOf(over) !== "object") return over;
    const out = Object.assign({}, base);
    for (const [k, v] of Object.entries(over)) out[k] = k in base ? merge(base[k], v) : v;
    return out;
  }

  function put(target, path, value) {
    let node = target;
    path.slice(0, -1).forEach((k) => { if (typeOf(node[k]) !== "object") node[k] = {}; node = node[k]; });
    node[path[path.length - 1]] = value;
  }

  // The same reading as appflow/server/ui/forms.py: a box is on or off, an empty number
  // is not set, a choice is JSON, a text area is JSON (YAML only the server reads).
  function parseField(f, el) {
    if (f.kind === "boolean") return { value: el.checked };
    const text = el.value;
    if (f.kind === "string" || f.kind === "password") return { value: text };
    if (f.kind === "integer" || f.kind === "number") {
      if (!text.trim()) return { skip: true };
      const n = Number(text);
      if (!Number.isFinite(n) || (f.kind === "integer" && !Number.isInteger(n))) return { error: f.path.join(".") + ": '" + text + "' is not a" + (f.kind === "integer" ? "n integer" : " number") };
      return { value: n };
    }
    if (f.kind === "enum") { try { return { value: JSON.parse(text) }; } catch (_) { return { value: text }; } }
    if (!text.trim()) return { skip: true };
    try { return { value: JSON.parse(text) }; } catch (_) { return { unknown: true }; }
  }

  function fieldFor(fields, path) {
    const at = path.map(String);
    let best = null;
    for (const f of fields) {
      if (f.path.length === at.length && f.path.every((p, i) => p === at[i])) return f;
      if (f.path.length < at.length && f.path.every((p, i) => p === at[i]) && (!best || f.path.length > best.path.length)) best = f;
    }
    if (best) return best;
    return fields.find((f) => at.length && at.every((p, i) => f.path[i] === p)) || null;
  }

  function holds(condition, values) {
    return condition.split("&&").every((term) => {
      const [key, raw] = term.split("=");
      let node = values;
      for (const k of key.trim().split(".")) node = node && typeof node === "object" ? node[k] : undefined;
      let want = raw === undefined ? undefined : raw.trim();
      if (want === "true") want = true; else if (want === "false") want = false;
      return node === want || String(node) === String(want);
    });
  }

  function installForm(form) {
    const schema = readJson("values-schema") || {};
    const defaults = readJson("values-defaults") || {};
    const fields = readJson("values-fields") || [];
    const element = (f) => form.elements.namedItem(f.name);
    const summary = document.getElementById("client-errors");

    function current() {
      const chosen = {};
      const problems = {};
      const unknown = new Set();
      for (const f of fields) {
        const el = element(f);
        if (!el) continue;
        const read = parseField(f, el);
        if (read.error) problems[f.name] = read.error;
        else if (read.unknown) unknown.add(f.name);
        else if (!read.skip && !equal(read.value, f.default)) put(chosen, f.path, read.value);
      }
      return { values: merge(defaults, chosen), problems, unknown };
    }

    function showIf() {
      const values = current().values;
      form.querySelectorAll("[data-show-if]").forEach((div) => { div.hidden = !holds(div.dataset.showIf, values); });
    }

    function check() {
      const { values, problems, unknown } = current();
      const errors = [];
      validate(values, schema, schema, [], errors);
      const byField = Object.assign({}, problems);
      const general = [];
      for (const e of errors) {
        const f = fieldFor(fields, e.path);
        if (f && unknown.has(f.name)) continue; // YAML the browser cannot read: the server checks it
        if (f) byField[f.name] = byField[f.name] ? byField[f.name] + "; " + e.message : e.message;
        else general.push(e.message);
      }
      form.querySelectorAll(".field[data-field]").forEach((div) => {
        const message = byField[div.dataset.field] || "";
        div.classList.toggle("invalid", !!message);
        const p = div.querySelector(".field-error");
        if (p) p.textContent = message;
        if (message) { const d = div.closest("details"); if (d) d.open = true; }
      });
      const count = Object.keys(byField).length + general.length;
      summary.classList.toggle("hidden", count === 0);
      summary.textContent = count ? "Not sent: " + count + " value" + (count > 1 ? "s" : "") + " to fix. " + general.join("; ") : "";
      return count === 0;
    }

    form.addEventListener("submit", (ev) => {
      if (!check()) {
        ev.preventDefault();
        ev.stopImmediatePropagation();
        const first = form.querySelector(".field.invalid input, .field.invalid select, .field.invalid textarea");
        if (first) first.focus();
      }
    }, true);
    form.addEventListener("change", () => { showIf(); if (form.querySelector(".field.invalid")) check(); });
    showIf();

    // Target picker: show the chosen kind's input and which clusters it matches now.
    const picker = document.getElementById("targets");
    if (!picker) return;
    const matches = document.getElementById("matches");
    let pending = null;
    function refresh() {
      const kind = (form.querySelector('input[name="target"]:checked') || {}).value || "all";
      picker.querySelectorAll("[data-target]").forEach((div) => { div.hidden = div.dataset.target !== kind; });
      const params = new URLSearchParams();
      if (kind === "all") params.set("target", "all");
      else params.set("target", kind);
      if (kind === "clusters") form.querySelectorAll('input[name="cluster[]"]:checked').forEach((c) => params.append("cluster", c.value));
      if (kind === "group") params.set("group", form.elements.namedItem("group").value);
      if (kind === "selector") params.set("selector", form.elements.namedItem("selector").value);
      if (pending) pending.abort();
      pending = new AbortController();
      fetch("/ui/match?" + params.toString(), { signal: pending.signal, credentials: "same-origin" })
        .then((r) => r.json())
        .then((body) => {
          if (body.error) { matches.textContent = body.error; matches.className = "matches bad"; }
          else if (!body.clusters.length) { matches.textContent = "Matches no cluster."; matches.className = "matches bad"; }
          else { matches.textContent = "Matches " + body.clusters.length + ": " + body.clusters.join(", "); matches.className = "matches ok"; }
        })
        .catch(() => {});
    }
    picker.addEventListener("change", refresh);
    picker.addEventListener("input", refresh);
    refresh();
  }

  // -- start ---------------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("form[data-busy]").forEach(busy);
    const form = document.getElementById("install-form");
    if (form) installForm(form);
    const grid = document.getElementById("grid");
    if (grid) stream("/ui/stream?since=" + encodeURIComponent(grid.dataset.since || "") + "&apps=" + encodeURIComponent(grid.dataset.apps || ""));
    const streamed = document.querySelector("[data-stream]");
    if (streamed) stream(streamed.dataset.stream);
    const diff = document.getElementById("diff");
    if (diff && diff.dataset.src) {
      diff.innerHTML = '<p class="muted">Comparing with the clusters…</p>';
      fetch(diff.dataset.src, { credentials: "same-origin" })
        .then((r) => {
          if (r.redirected && r.url.indexOf("/ui/login") !== -1) { window.location.assign(r.url); return ""; }
          return r.text();
        })
        .then((html) => { if (html) diff.innerHTML = html; })
        .catch(() => { diff.innerHTML = '<p class="error">Could not load the diff; reload the page.</p>'; });
    }
  });

  window.appflowSchema = { validate };
})();
