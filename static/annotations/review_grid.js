// Grid mode: a page of centre patches; relabel the odd ones out, agree to the rest at once.
// Every patch still gets its own review row (one batch request per action).
"use strict";

(() => {
  const cfg = JSON.parse(document.getElementById("review-config").textContent);
  const PAGE = 48;
  const $ = (id) => document.getElementById(id);
  const classById = new Map(cfg.classes.map((c) => [c.id, c]));
  const classByKey = new Map(cfg.classes.filter((c) => c.hotkey).map((c) => [c.hotkey, c]));
  let items = []; // {item, el, selected, done}
  let focus = 0;
  let anchor = null;

  const api = (path, body) => window.reviewApi.post(cfg.api, path, body);
  const say = window.reviewApi.say;

  function caption(item) {
    const label = classById.get(item.current_label);
    const model = item.model ? ` · model: ${item.model.top[0].name}` : "";
    return `${label ? label.name : "(none)"}${model}`;
  }

  function render() {
    $("grid-items").replaceChildren(...items.map((entry, i) => {
      const fig = document.createElement("figure");
      fig.dataset.patch = entry.item.patch;
      const img = new Image();
      img.src = entry.item.grid[12];
      img.alt = entry.item.image_name;
      const cap = document.createElement("figcaption");
      cap.textContent = caption(entry.item);
      fig.append(img, cap);
      fig.addEventListener("click", (e) => select(i, e.shiftKey));
      entry.el = fig;
      return fig;
    }));
    refresh();
  }

  function refresh() {
    items.forEach((entry, i) => {
      entry.el.classList.toggle("selected", entry.selected);
      entry.el.classList.toggle("done", entry.done);
      entry.el.classList.toggle("focused", i === focus);
      entry.el.querySelector("figcaption").textContent = caption(entry.item);
    });
    const open = items.filter((e) => !e.done).length;
    const chosen = items.filter((e) => e.selected && !e.done).length;
    $("grid-status").textContent = `${chosen} selected · ${open} open on this page`;
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

  async function send(entries, decision) {
    if (!entries.length) return;
    const decisions = entries.map((e) => Object.assign({
      patch: e.item.patch, patch_version: e.item.version,
      model_version: e.item.model ? e.item.model.version : "",
      shown_probabilities: e.item.model ? e.item.model.top : null,
    }, decision(e)));
    const {status, data} = await api("/reviews/batch/", {decisions});
    if (status !== 200) { say(data.detail || `Not saved (HTTP ${status})`, "error"); return; }
    const problems = [];
    data.results.forEach((result, k) => {
      const entry = entries[k];
      if (result.status === 201) {
        entry.done = true;
        entry.selected = false;
        entry.item.version = result.patch.version;
        entry.item.current_label = result.patch.current_label;
      } else {
        problems.push(`${entry.item.image_name}: ${result.detail}`);
      }
    });
    if (problems.length) say(problems.join(" "), "warning"); else say("");
    refresh();
    if (items.every((e) => e.done)) load();
  }

  function relabel(classId) {
    const chosen = items.filter((e) => e.selected && !e.done);
    if (!chosen.length) { say("Select the patches to relabel first.", "info"); return; }
    send(chosen, (e) => (classId === e.item.current_label
      ? {action: "confirm"} : {action: "correct", label: classId}));
  }

  function agreeRest() {
    send(items.filter((e) => !e.selected && !e.done), () => ({action: "confirm"}));
  }

  async function load() {
    const {status, data} = await api(`/queues/${cfg.queue}/next/`,
      Object.assign({count: PAGE}, window.reviewApi.filters(cfg.filters)));
    if (status !== 200) { say(data.detail || `Could not load (HTTP ${status})`, "error"); return; }
    items = data.items.map((item) => ({item, selected: false, done: false}));
    focus = 0;
    anchor = null;
    if (!items.length) say("Nothing left in this queue with these filters.", "info");
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
      if (event.shiftKey) select(focus, false); else refresh();
    } else if (key === " " && items.length) {
      event.preventDefault();
      select(focus, false);
    } else if (key === "Enter") {
      event.preventDefault();
      agreeRest();
    } else if (classByKey.has(key)) {
      event.preventDefault();
      relabel(classByKey.get(key).id);
    }
  });
  $("class-buttons").addEventListener("click", (e) => {
    const button = e.target.closest("button[data-class]");
    if (button) relabel(Number(button.dataset.class));
  });
  $("agree-rest").addEventListener("click", agreeRest);
  load();
})();
