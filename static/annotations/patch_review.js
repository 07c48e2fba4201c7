// The patch page: review this one patch with the review page's keys (class keys, Enter,
// ';', U, X then 1-4, Backspace), with a reason box for unsure and exclude, and walk the
// patch browser's filtered list (S or → next, ← previous). Decisions go through the review
// API (review_api.js) like every other write; the page then re-reads its own facts.
"use strict";

(() => {
  const cfg = JSON.parse(document.getElementById("patch-config").textContent);
  const $ = (id) => document.getElementById(id);
  const classByKey = new Map(cfg.classes.filter((c) => c.hotkey).map((c) => [c.hotkey, c]));
  const shownAt = performance.now();
  const made = []; // versions left by the decisions made on this page, newest last
  let busy = false;

  const say = window.reviewApi.say;
  const api = (path, body) => window.reviewApi.post(cfg.api, path, body);

  async function refresh() {
    // Re-read the server's page and swap in what a decision changes.
    const response = await fetch(location.href, {credentials: "same-origin"});
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const id of ["facts", "model-box", "class-buttons", "history"]) {
      const fresh = doc.getElementById(id);
      const old = $(id);
      if (fresh && old) old.replaceWith(fresh);
    }
    const next = JSON.parse(doc.getElementById("patch-config").textContent);
    cfg.version = next.version;
    cfg.current_label = next.current_label;
  }

  async function send(body, what) {
    if (busy) return;
    busy = true;
    closeBoxes();
    try {
      const {status, data} = await api(`/patches/${cfg.patch}/reviews/`, body);
      if (status === 201) {
        if (body.action === "undo") made.pop(); else made.push(data.patch.version);
        await refresh();
        say(`${what}. Now ${data.patch.status}, version ${data.patch.version}.` +
            (cfg.next ? " S or → for the next patch." : ""), "info");
        document.body.dataset.saved = String(Number(document.body.dataset.saved || 0) + 1);
      } else if (status === 409) {
        await refresh();
        say(data.detail, "warning");
      } else {
        say(data.detail || `Not saved (HTTP ${status})`, "error");
      }
    } catch (err) {
      say(`Network error: ${err}; nothing was saved`, "error");
    } finally {
      busy = false;
    }
  }

  function decide(action, extra, what) {
    const body = Object.assign({
      action,
      patch_version: cfg.version,
      time_spent_ms: Math.round(performance.now() - shownAt),
      model_version: cfg.model ? cfg.model.version : "",
      shown_probabilities: cfg.model ? cfg.model.top : null,
    }, extra || {});
    send(body, what || `Saved: ${action}`);
  }

  function chooseClass(cls) {
    if (cls.id === cfg.current_label) decide("confirm", null, `Confirmed ${cls.name}`);
    else decide("correct", {label: cls.id}, `Corrected to ${cls.name}`);
  }

  function acceptModel() {
    const cls = cfg.classes.find((c) => c.id === cfg.suggested);
    if (!cls) { say("The model has no opinion on this patch.", "info"); return; }
    chooseClass(cls);
  }

  function undo() {
    if (!made.length) { say("Nothing decided on this page to undo.", "info"); return; }
    send({action: "undo", patch_version: cfg.version}, "Undone");
  }

  function go(url, which) {
    if (url) location.href = url;
    else say(`No ${which} patch in this list.`, "info");
  }

  const box = (name) => $(`${name}-box`);
  function openBox(name) {
    closeBoxes();
    box(name).hidden = false;
    if (name === "unsure") $("unsure-comment").focus();
  }
  function closeBoxes() {
    for (const name of ["unsure", "exclude"]) if (box(name)) box(name).hidden = true;
  }
  const isOpen = (name) => box(name) && !box(name).hidden;

  function saveUnsure() {
    const comment = $("unsure-comment").value.trim();
    decide("unsure", {comment}, comment ? "Saved as unsure, with your reason" : "Saved as unsure");
    $("unsure-comment").value = "";
  }

  function exclude(reason) {
    const comment = $("exclude-comment").value.trim();
    decide("exclude", {reason, comment}, `Excluded (${reason})`);
    $("exclude-comment").value = "";
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key;
    if (key === "Escape") { closeBoxes(); say(""); event.target.blur?.(); return; }
    if (event.target.closest("textarea")) {
      if (key === "Enter" && !event.shiftKey && isOpen("unsure")) {
        event.preventDefault();
        saveUnsure();
      }
      return; // typing a reason: no key decides anything else
    }
    if (event.target.closest("input, select")) return;
    // A focused button or link must never turn Space or Enter into a click.
    if ((key === " " || key === "Enter") && event.target.closest("button, a")) {
      event.preventDefault();
    }
    if (key === "=") { event.preventDefault(); toggleZoom(); return; }
    if (key === "ArrowLeft") { event.preventDefault(); go(cfg.previous, "previous"); return; }
    if (key === "ArrowRight") { event.preventDefault(); go(cfg.next, "next"); return; }
    if (!cfg.may_review) return;
    if (isOpen("exclude")) {
      const reason = cfg.reasons[Number(key) - 1];
      if (reason) { event.preventDefault(); exclude(reason); }
      return;
    }
    if (isOpen("unsure")) {
      if (key === "Enter") { event.preventDefault(); saveUnsure(); }
      return;
    }
    const lower = key.length === 1 ? key.toLowerCase() : key;
    const actions = {
      Enter: () => decide("confirm", null, "Confirmed"),
      ";": acceptModel,
      Backspace: undo,
      s: () => go(cfg.next, "next"),
      u: () => openBox("unsure"),
      x: () => openBox("exclude"),
    };
    if (actions[lower]) { event.preventDefault(); actions[lower](); return; }
    const cls = classByKey.get(lower);
    if (cls) { event.preventDefault(); chooseClass(cls); }
  }

  // The context pane: full size, scrolled so the centre patch is in the middle.
  const pane = $("context-pane");
  function centreContext() {
    pane.scrollLeft = (pane.scrollWidth - pane.clientWidth) / 2;
    pane.scrollTop = (pane.scrollHeight - pane.clientHeight) / 2;
  }
  function toggleZoom() {
    pane.dataset.zoom = pane.dataset.zoom === "full" ? "fit" : "full";
    centreContext();
  }
  centreContext();
  window.addEventListener("load", centreContext); // once the styles and tiles are laid out
  window.addEventListener("resize", centreContext);

  document.addEventListener("keydown", onKey);
  const similar = $("similar");
  if (similar && window.similarPanel) window.similarPanel.attach(similar).load();
  const panel = $("patch-review");
  if (!panel) return;
  // Buttons act on the click and keep no focus, so no later key press can "press" them.
  panel.addEventListener("mousedown", (e) => {
    if (e.target.closest("button")) e.preventDefault();
  });
  panel.addEventListener("click", (e) => {
    const button = e.target.closest("button");
    if (!button) return;
    if (button.dataset.class) {
      const cls = cfg.classes.find((c) => c.id === Number(button.dataset.class));
      if (cls) chooseClass(cls);
    } else if (button.dataset.reason) {
      exclude(button.dataset.reason);
    } else if (button.dataset.submit === "unsure") {
      saveUnsure();
    } else if (button.dataset.action) {
      ({confirm: () => decide("confirm", null, "Confirmed"), accept: acceptModel,
        unsure: () => openBox("unsure"), exclude: () => openBox("exclude"), undo,
        next: () => go(cfg.next, "next")})[button.dataset.action]();
    }
  });
})();
