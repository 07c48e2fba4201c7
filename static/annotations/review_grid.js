// Grid mode: a page of centre patches; relabel the odd ones out, agree to the rest at once.
// Every patch still gets its own review row (one batch request per action). Enter agrees
// only to the patches that have been fully on screen for SEEN_MS; every batch can be undone.
// While a batch, an undo or the next page is on its way, keys that decide are ignored: a
// second Enter used to send the same batch again (and report the user's own decisions as
// conflicts), or confirm the next page the moment it appeared.
"use strict";

(() => {
  const cfg = JSON.parse(document.getElementById("review-config").textContent);
  const PAGE = 48;
  const SEEN_MS = 1000; // on screen this long, whole, before Enter may agree to a patch
  const MAX_PROBLEMS = 3; // refused items named in the banner; the rest are counted
  const $ = (id) => document.getElementById(id);
  const classById = new Map(cfg.classes.map((c) => [c.id, c]));
  const classByKey = new Map(cfg.classes.filter((c) => c.hotkey).map((c) => [c.hotkey, c]));
  let items = []; // {item, el, selected, done, seen, relabelled}
  let focus = 0;
  let anchor = null;
  let batches = []; // what each action on this page did, newest last: [{entries, kind}]
  let busy = false; // a batch, an undo or a page load is on its way

  const api = (path, body) => window.reviewApi.post(cfg.api, path, body);
  const say = window.reviewApi.say;

  // "Seen" = the whole patch, drawn (its image decoded: a tile still loading shows
  // nothing), has been inside the window for SEEN_MS at some time on this page.
  const watcher = new IntersectionObserver((records) => {
    for (const r of records) {
      const entry = items.find((e) => e.el === r.target);
      if (!entry || entry.seen) continue;
      clearTimeout(entry.seenTimer);
      entry.visible = r.isIntersecting && r.intersectionRatio >= 0.99;
      if (!entry.visible) continue;
      entry.el.querySelector("img").decode().then(() => {
        if (!entry.visible || entry.seen) return;
        clearTimeout(entry.seenTimer);
        entry.seenTimer = setTimeout(() => { entry.seen = true; status(); }, SEEN_MS);
      }, () => undefined); // an image that cannot be drawn is never "seen"
    }
  }, {threshold: [0.99]});

  // Runs ``work`` (a promise-returning action) unless another is on its way.
  async function exclusive(work) {
    if (busy) { say("Still saving the last action: wait for its answer.", "info"); return; }
    busy = true;
    try {
      await work();
    } catch (err) {
      say(`Network error: ${err}; nothing more was saved. Try again.`, "error");
    } finally {
      busy = false;
    }
  }

  function captionParts(item) {
    const label = classById.get(item.current_label);
    const labelName = label ? label.name : "(none)";
    const top = item.model && item.model.top.length ? item.model.top[0] : null;
    return {labelName, top, disagree: Boolean(top && top.name !== labelName)};
  }

  function fillCaption(cap, item) {
    const {labelName, top, disagree} = captionParts(item);
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = labelName;
    const parts = [label];
    if (top) {
      const model = document.createElement("span");
      model.className = "model" + (disagree ? " disagree" : "");
      model.textContent = `model: ${top.name} ${(top.p * 100).toFixed(0)}%`;
      parts.push(model);
    }
    cap.replaceChildren(...parts);
    cap.title = parts.map((p) => p.textContent).join(" · ");
  }

  function render() {
    watcher.disconnect();
    $("grid-items").replaceChildren(...items.map((entry, i) => {
      const fig = document.createElement("figure");
      fig.dataset.patch = entry.item.patch;
      const img = new Image();
      img.src = entry.item.grid[12];
      img.alt = entry.item.image_name;
      const cap = document.createElement("figcaption");
      fig.append(img, cap);
      fig.addEventListener("click", (e) => select(i, e.shiftKey));
      entry.el = fig;
      watcher.observe(fig);
      return fig;
    }));
    refresh();
  }

  function status() {
    const open = items.filter((e) => !e.done).length;
    const chosen = items.filter((e) => e.selected && !e.done).length;
    const ready = items.filter((e) => !e.done && !e.selected && e.seen).length;
    $("grid-status").textContent =
      `${chosen} selected · ${open} open on this page · Enter agrees to ${ready} seen`;
  }

  function refresh() {
    items.forEach((entry, i) => {
      entry.el.classList.toggle("selected", entry.selected);
      entry.el.classList.toggle("done", entry.done);
      entry.el.classList.toggle("focused", i === focus);
      fillCaption(entry.el.querySelector("figcaption"), entry.item);
    });
    status();
  }

  function select(i, range) {
    if (items[i].done) return;
    if (range && anchor !== null) {
      const [a, b] = [Math.min(anchor, i), Math.max(anchor, i)];
      for (let k = a; k <= b; k++) if (!items[k].done) items[k].selected = true;
    } else {
      items[i].selected = !items[i].selected;
      anchor = i;
    }
    focus = i;
    refresh();
  }

  function apply(entry, result) {
    entry.item.version = result.patch.version;
    entry.item.current_label = result.patch.current_label;
  }

  // The summary of this page, with the undo of the last batch.
  function summarise(lead, problems) {
    const confirmed = items.filter((e) => e.done && !e.relabelled).length;
    const relabelled = items.filter((e) => e.done && e.relabelled).length;
    const unseen = items.filter((e) => !e.done && !e.seen).length;
    const open = items.filter((e) => !e.done).length;
    let text = `${lead} This page: ${confirmed} confirmed, ${relabelled} relabelled`;
    if (unseen) text += `; ${unseen} not yet seen left open (scroll to them, then Enter again)`;
    else if (!open) text += "; page done: Enter loads the next page";
    text += ".";
    if (problems.length) {
      text += " " + problems.slice(0, MAX_PROBLEMS).join(" ");
      if (problems.length > MAX_PROBLEMS) {
        text += ` (and ${problems.length - MAX_PROBLEMS} more refused)`;
      }
    }
    say(text, problems.length ? "warning" : "info");
    if (batches.length) {
      const undo = document.createElement("button");
      undo.type = "button";
      undo.dataset.undo = "";
      undo.innerHTML = "<kbd>⌫</kbd> undo this batch";
      undo.addEventListener("click", () => exclusive(undoBatch));
      $("banner").append(" ", undo);
    }
  }

  async function send(entries, decision, kind) {
    if (!entries.length) return;
    const decisions = entries.map((e) => Object.assign({
      patch: e.item.patch, patch_version: e.item.version,
      model_version: e.item.model ? e.item.model.version : "",
      shown_probabilities: e.item.model ? e.item.model.top : null,
    }, decision(e)));
    const {status: code, data} = await api("/reviews/batch/", {decisions});
    if (code !== 200) { say(data.detail || `Not saved (HTTP ${code})`, "error"); return; }
    const problems = [];
    const saved = [];
    data.results.forEach((result, k) => {
      const entry = entries[k];
      if (result.status === 201) {
        entry.done = true;
        entry.selected = false;
        entry.relabelled = decisions[k].action === "correct" &&
          result.patch.current_label !== entry.item.current_label;
        apply(entry, result);
        saved.push(entry);
      } else {
        problems.push(`${entry.item.image_name}: ${result.detail}`);
      }
    });
    if (saved.length) batches.push({entries: saved, kind});
    refresh();
    const lead = kind === "relabel" ? `Relabelled ${saved.length}.` : `Confirmed ${saved.length}.`;
    summarise(lead, problems);
  }

  async function undoBatch() {
    const batch = batches.pop();
    if (!batch) { say("Nothing to undo on this page.", "info"); return; }
    const decisions = batch.entries.map((e) => ({
      patch: e.item.patch, patch_version: e.item.version, action: "undo"}));
    const {status: code, data} = await api("/reviews/batch/", {decisions});
    if (code !== 200) {
      batches.push(batch);
      say(data.detail || `Undo failed (HTTP ${code})`, "error");
      return;
    }
    const problems = [];
    let undone = 0;
    data.results.forEach((result, k) => {
      const entry = batch.entries[k];
      if (result.status === 201) {
        entry.done = false;
        entry.relabelled = false;
        apply(entry, result);
        undone += 1;
      } else {
        problems.push(`${entry.item.image_name}: ${result.detail}`);
      }
    });
    refresh();
    summarise(`Undone: ${undone} back open.`, problems);
  }

  function relabel(classId) {
    const chosen = items.filter((e) => e.selected && !e.done);
    if (!chosen.length) { say("Select the patches to relabel first.", "info"); return; }
    exclusive(() => send(chosen, (e) => (classId === e.item.current_label
      ? {action: "confirm"} : {action: "correct", label: classId}), "relabel"));
  }

  function agreeRest() {
    const open = items.filter((e) => !e.done);
    if (!open.length) { exclusive(load); return; }
    const ready = open.filter((e) => !e.selected && e.seen);
    if (!ready.length) {
      say("Nothing seen to agree to yet: look at the patches (each counts as seen after " +
          `${SEEN_MS / 1000} s whole on screen), scroll to the others, then Enter.`, "info");
      return;
    }
    exclusive(() => send(ready, () => ({action: "confirm"}), "confirm"));
  }

  async function load() {
    items.forEach((e) => clearTimeout(e.seenTimer));
    const {status: code, data} = await api(`/queues/${cfg.queue}/next/`,
      Object.assign({count: PAGE}, window.reviewApi.filters(cfg.filters)));
    if (code !== 200) { say(data.detail || `Could not load (HTTP ${code})`, "error"); return; }
    items = data.items.map((item) => ({item, selected: false, done: false, seen: false,
                                       relabelled: false}));
    focus = 0;
    anchor = null;
    batches = [];
    say(items.length ? "" : "Nothing left in this queue with these filters.", "info");
    window.scrollTo(0, 0);
    render();
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input, select, textarea")) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const columns = Math.max(1, Math.round($("grid-items").clientWidth /
      (items[0] && items[0].el ? items[0].el.offsetWidth : 150)));
    const moves = {ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns};
    if (moves[key] !== undefined && items.length) {
      event.preventDefault();
      focus = Math.max(0, Math.min(items.length - 1, focus + moves[key]));
      items[focus].el.scrollIntoView({block: "nearest"});
      if (event.shiftKey) select(focus, false); else refresh();
    } else if (key === " ") {
      event.preventDefault(); // never a click on a focused button
      if (items.length) select(focus, false);
    } else if (event.repeat && (key === "Enter" || key === "Backspace" || classByKey.has(key))) {
      event.preventDefault(); // a held key: one action, not one per repeat
    } else if (key === "Enter") {
      event.preventDefault();
      agreeRest();
    } else if (key === "Backspace") {
      event.preventDefault();
      exclusive(undoBatch);
    } else if (key === "Escape") {
      say("");
    } else if (classByKey.has(key)) {
      event.preventDefault();
      relabel(classByKey.get(key).id);
    }
  });
  // Buttons act on the click and keep no focus, so no later key press can "press" them.
  document.addEventListener("mousedown", (e) => {
    if (e.target.closest(".review button")) e.preventDefault();
  });
  $("class-buttons").addEventListener("click", (e) => {
    const button = e.target.closest("button[data-class]");
    if (button) relabel(Number(button.dataset.class));
  });
  $("agree-rest").addEventListener("click", (e) => { if (e.detail <= 1) agreeRest(); });
  exclusive(load);
})();
