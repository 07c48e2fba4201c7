// The review page: one patch at a time, keyboard first.
//
// Items are leased a few at a time ahead of need and their 25 tiles decoded in the
// background, so a key press paints the next patch from memory; the decision is sent
// without waiting (a refused one comes back with the server's explanation).
"use strict";

(() => {
  const cfg = JSON.parse(document.getElementById("review-config").textContent);
  const AHEAD = 4; // items kept ready beyond the one shown
  const $ = (id) => document.getElementById(id);
  const grid = document.getElementById("context-grid");
  const classById = new Map(cfg.classes.map((c) => [c.id, c]));
  const classByKey = new Map(cfg.classes.filter((c) => c.hotkey).map((c) => [c.hotkey, c]));

  const buffer = []; // items ready to show (tiles decoding or decoded)
  const seen = new Set(); // patch ids already shown or buffered in this page
  const history = []; // decisions made here, newest last: {item, saved: Promise<state|null>}
  let current = null;
  let shownAt = 0;
  let fetching = null;
  let done = 0;
  let exhausted = false;
  let inflight = 0; // decisions sent, not yet answered

  const api = (path, body) => window.reviewApi.post(cfg.api, path, body);
  const say = window.reviewApi.say;

  function preload(item) {
    // Build and decode the item's 25 cells off the critical path; showing it then only
    // swaps these ready elements into the grid.
    item.cells = item.grid.map((url, i) => {
      const cell = url ? new Image() : document.createElement("div");
      cell.className = "tile" + (url ? "" : " blank") + (i === 12 ? " centre" : "");
      if (url) { cell.src = url; cell.alt = i === 12 ? item.image_name : ""; }
      return cell;
    });
    item.ready = Promise.all(item.cells.filter((c) => c.decode).map(
      (img) => img.decode().catch(() => undefined))).then(() => { item.isReady = true; });
    return item;
  }

  function refill() {
    if (fetching || exhausted || buffer.length >= AHEAD) return fetching;
    // The server returns the leases we hold first (shown, buffered, being submitted), then
    // new ones: ask for enough to get AHEAD new items past those.
    const held = buffer.length + (current ? 1 : 0) + inflight;
    const count = Math.min(200, held + AHEAD + 1 - buffer.length);
    const body = Object.assign({count}, window.reviewApi.filters(cfg.filters));
    fetching = api(`/queues/${cfg.queue}/next/`, body).then(({status, data}) => {
      fetching = null;
      if (status !== 200) {
        say(data.detail || `Could not load the queue (HTTP ${status})`, "error");
        return;
      }
      const fresh = data.items.filter((item) => !seen.has(item.patch));
      fresh.forEach((item) => { seen.add(item.patch); buffer.push(preload(item)); });
      if (!fresh.length && !buffer.length && data.items.length < count && !inflight) {
        exhausted = true;
      }
    }).catch((err) => { fetching = null; say(`Network error: ${err}`, "error"); });
    return fetching;
  }

  function paint(item) {
    current = item;
    grid.replaceChildren(...item.cells);
    const label = classById.get(item.current_label);
    $("current-label").textContent = label ? label.name : "(none)";
    $("patch-meta").textContent =
      `${item.image_name} · slide ${item.slide} · ${item.split || "no split"} · ${item.queue}`;
    const top = $("model-top");
    top.replaceChildren(...(item.model ? item.model.top : []).map((t) => {
      const li = document.createElement("li");
      li.textContent = `${t.name} ${(t.p * 100).toFixed(1)}%`;
      return li;
    }));
    $("model-box").hidden = !item.model;
    document.querySelectorAll("#class-buttons button").forEach((b) => {
      b.classList.toggle("current", Number(b.dataset.class) === item.current_label);
    });
    shownAt = performance.now();
    // Two frames later the browser has painted this item: tests and benchmarks read it.
    requestAnimationFrame(() => requestAnimationFrame(() => {
      window.reviewPaintedAt = performance.now();
      window.reviewShownPatch = item.patch;
      document.body.dataset.patch = String(item.patch);
    }));
  }

  function showNext() {
    const item = buffer.shift();
    if (!item) {
      current = null;
      grid.replaceChildren();
      $("current-label").textContent = "–";
      document.body.dataset.patch = "";
      if (exhausted) {
        say("This queue is empty for you. Pick another queue above.", "info");
      } else {
        $("review-status").textContent = "loading…";
        (refill() || Promise.resolve()).then(() => {
          $("review-status").textContent = "";
          if (!current) setTimeout(showNext, buffer.length ? 0 : 250); // decisions in flight
        });
      }
      return;
    }
    if (item.isReady) paint(item);
    else { current = item; item.ready.then(() => { if (current === item) paint(item); }); }
    refill();
  }

  async function submit(item, body) {
    inflight += 1;
    const {status, data} = await api(`/patches/${item.patch}/reviews/`, body)
      .finally(() => { inflight -= 1; });
    if (status === 201) {
      done += body.action === "undo" ? -1 : 1;
      $("done-count").textContent = `${done} decided on this page`;
      return data.patch;
    }
    if (status === 409) {
      say(data.detail, "warning");
      const again = await api(`/patches/${item.patch}/lease/`, {queue: cfg.queue});
      if (again.status === 200) buffer.unshift(preload(again.data.item));
    } else {
      say(data.detail || `Not saved (HTTP ${status})`, "error");
      buffer.unshift(preload(item));
    }
    return null;
  }

  function decide(action, extra) {
    if (!current) return;
    const item = current;
    const body = Object.assign({
      action,
      patch_version: item.version,
      time_spent_ms: Math.round(performance.now() - shownAt),
      model_version: item.model ? item.model.version : "",
      shown_probabilities: item.model ? item.model.top : null,
    }, extra || {});
    say("");
    showNext(); // paint the next patch now; the decision travels meanwhile
    // Kept in the order the keys were pressed, whatever order the answers come back in.
    history.push({item, saved: submit(item, body)});
  }

  function chooseClass(classId) {
    if (!current) return;
    if (classId === current.current_label) decide("confirm");
    else decide("correct", {label: classId});
  }

  async function undo() {
    const last = history.pop();
    if (!last) { say("Nothing to undo on this page.", "info"); return; }
    const state = await last.saved;
    if (!state) { say("That decision was not saved, so there is nothing to undo.", "info"); return; }
    const {status, data} = await api(`/patches/${last.item.patch}/reviews/`,
      {action: "undo", patch_version: state.version});
    if (status !== 201) { say(data.detail || `Undo failed (HTTP ${status})`, "error"); return; }
    done -= 1;
    $("done-count").textContent = `${done} decided on this page`;
    const again = await api(`/patches/${last.item.patch}/lease/`, {queue: cfg.queue});
    if (again.status !== 200) { say(again.data.detail || "Could not reopen it", "error"); return; }
    if (current) buffer.unshift(current);
    const item = preload(again.data.item);
    await item.ready;
    paint(item);
    say(`Undone: ${item.image_name} is back.`, "info");
  }

  function skip() {
    if (!current) return;
    api(`/patches/${current.patch}/skip/`);
    showNext();
  }

  function toggle(attr, a, b) {
    const viewer = $("viewer");
    viewer.dataset[attr] = viewer.dataset[attr] === a ? b : a;
  }

  const exclude = {
    open() { if (current) $("exclude-box").hidden = false; },
    isOpen() { return !$("exclude-box").hidden; },
    close() { $("exclude-box").hidden = true; },
    choose(reason) { exclude.close(); decide("exclude", {reason}); },
  };

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input, select, textarea")) return;
    const key = event.key;
    const help = $("help");
    if (key === "Escape") { help.hidden = true; exclude.close(); return; }
    if (exclude.isOpen()) {
      const reason = cfg.reasons[Number(key) - 1];
      if (reason) { event.preventDefault(); exclude.choose(reason); }
      return;
    }
    const lower = key.length === 1 ? key.toLowerCase() : key;
    const actions = {
      Enter: () => decide("confirm"),
      Backspace: undo,
      s: skip,
      u: () => decide("unsure"),
      x: exclude.open,
      "?": () => { help.hidden = !help.hidden; },
      ".": () => toggle("context", "on", "off"),
      "=": () => toggle("zoom", "fit", "full"),
    };
    if (actions[lower]) { event.preventDefault(); actions[lower](); return; }
    const cls = classByKey.get(lower);
    if (cls) { event.preventDefault(); chooseClass(cls.id); }
  }

  document.addEventListener("keydown", onKey);
  $("class-buttons").addEventListener("click", (e) => {
    const button = e.target.closest("button[data-class]");
    if (button) chooseClass(Number(button.dataset.class));
  });
  document.querySelector(".action-buttons").addEventListener("click", (e) => {
    const button = e.target.closest("button[data-action]");
    if (!button) return;
    const a = button.dataset.action;
    const run = {confirm: () => decide("confirm"), unsure: () => decide("unsure"),
      exclude: exclude.open, skip, undo, help: () => { $("help").hidden = !$("help").hidden; },
      context: () => toggle("context", "on", "off"), zoom: () => toggle("zoom", "fit", "full")};
    run[a]();
  });
  $("exclude-box").addEventListener("click", (e) => {
    const button = e.target.closest("button[data-reason]");
    if (button) exclude.choose(button.dataset.reason);
  });

  refill().then(() => showNext());
})();
