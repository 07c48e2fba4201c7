// The review page: one patch at a time, keyboard first.
//
// Items are leased a few at a time ahead of need and their 25 tiles decoded in the
// background, so a key press paints the next patch from memory; the decision is sent
// without waiting (a refused one comes back with the server's explanation).
// In the candidates queue each patch is proposed as a class: Enter says yes, N no, a class
// key another class (the answers API); M shows the patches most like the one shown.
//
// A decision only ever applies to the patch on screen: while the next one is still
// decoding the viewer is blank and keys decide nothing, and a key held down (its repeats),
// the second click of a double click or a press within MIN_LOOK_MS of a patch appearing
// is ignored: each was a decision about a patch nobody had seen.
"use strict";

(() => {
  const cfg = JSON.parse(document.getElementById("review-config").textContent);
  const AHEAD = 4; // items kept ready beyond the one shown
  const MIN_LOOK_MS = 200; // a decision sooner than this after a patch appeared was not about it
  const SLOW_TILES_MS = 8000; // a patch whose tiles take longer is shown as far as it loaded
  const $ = (id) => document.getElementById(id);
  const grid = document.getElementById("context-grid");
  const classById = new Map(cfg.classes.map((c) => [c.id, c]));
  const classByKey = new Map(cfg.classes.filter((c) => c.hotkey).map((c) => [c.hotkey, c]));
  const classByName = new Map(cfg.classes.map((c) => [c.name, c]));
  const viewer = $("viewer");
  const stage = $("stage");
  const UM_PER_PX = 0.5; // SPIDER tiles: 20x, 0.5 um per native pixel
  const candidates = cfg.queue === "candidates";
  const similarBox = $("similar");
  const similar = similarBox && window.similarPanel ? window.similarPanel.attach(similarBox) : null;

  const buffer = []; // items ready to show (tiles decoding or decoded)
  const seen = new Set(); // patch ids already shown or buffered in this page
  const history = []; // decisions made here, newest last: {item, saved: Promise<state|null>}
  let current = null; // the item on screen: the only one a decision may apply to
  let pending = null; // the next item, taken from the buffer, its tiles still decoding
  let shownAt = 0;
  let fetching = null;
  let done = 0;
  let exhausted = false;
  let inflight = 0; // decisions sent, not yet answered
  let refused = ""; // the server refused this queue (400/403): say why, never ask again
  let misses = 0; // refills in a row that brought nothing: the retry backs off
  let elsewhere = null; // the server's word on items of this queue not for us right now
  let startSize = null; // this queue's size when the page opened
  let countsTimer = 0;

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
    const held = buffer.length + (current ? 1 : 0) + (pending ? 1 : 0) + inflight;
    const count = Math.min(200, held + AHEAD + 1 - buffer.length);
    const body = Object.assign({count}, window.reviewApi.filters(cfg.filters));
    fetching = api(`/queues/${cfg.queue}/next/`, body).then(({status, data}) => {
      fetching = null;
      if (status === 400 || status === 401 || status === 403 || status === 404) {
        // A refusal, not a hiccup: asking again would get the same answer.
        refused = status === 401 ? "You are no longer logged in: reload the page to log in"
          : data.detail || `HTTP ${status}`;
        exhausted = true;
        say(`${refused}. This page will not ask again: pick another queue above.`, "error");
        return;
      }
      if (status !== 200) {
        misses += 1;
        say(data.detail || `Could not load the queue (HTTP ${status}); trying again`, "error");
        return;
      }
      elsewhere = data.elsewhere || null;
      const fresh = data.items.filter((item) => !seen.has(item.patch));
      fresh.forEach((item) => { seen.add(item.patch); buffer.push(preload(item)); });
      misses = fresh.length ? 0 : misses + 1;
      if (!fresh.length && !buffer.length && data.items.length < count && !inflight) {
        exhausted = true;
      }
    }).catch((err) => {
      fetching = null;
      misses += 1;
      say(`Network error: ${err}; trying again`, "error");
    });
    return fetching;
  }

  // The model's first choice, as one of this project's classes (null without a model).
  function suggestion(item) {
    return item && item.model && item.model.top.length
      ? classByName.get(item.model.top[0].name) || null : null;
  }

  function paintModel(item, label) {
    const top = item.model ? item.model.top : [];
    $("model-top").replaceChildren(...top.map((t) => {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = t.name;
      const track = document.createElement("span");
      track.className = "track";
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${Math.max(0.5, t.p * 100).toFixed(1)}%`;
      track.append(bar);
      const p = document.createElement("span");
      p.className = "p";
      p.textContent = `${(t.p * 100).toFixed(1)}%`;
      li.append(name, track, p);
      return li;
    }));
    const verdict = $("model-verdict");
    const best = top[0];
    const disagrees = Boolean(best && label && best.name !== label.name);
    verdict.classList.toggle("disagree", disagrees);
    verdict.textContent = !best ? "" : !label
      ? `Model says ${best.name} (${(best.p * 100).toFixed(0)}%); the patch has no label yet.`
      : disagrees
      ? `Model disagrees with the label: it says ${best.name} (${(best.p * 100).toFixed(0)}%).`
      : `Model agrees with the label (${(best.p * 100).toFixed(0)}%).`;
    $("model-box").hidden = !item.model;
    const proto = item.prototype;
    $("prototype-opinion").hidden = !proto;
    $("prototype-opinion").textContent = proto
      ? `Nearest class prototype: ${proto.name} (cosine ${proto.similarity.toFixed(3)}` +
        (proto.margin !== null ? `, ${proto.margin.toFixed(3)} ahead of the next` : "") + ")"
      : "";
  }

  function paintCandidate(item) {
    const c = item.candidate;
    $("candidate-box").hidden = !c;
    if (!c) return;
    $("candidate-label").textContent = c.name;
    $("candidate-meta").textContent =
      `similarity ${c.similarity.toFixed(3)} to seed patch${c.seeds.length === 1 ? "" : "es"} ${c.seeds.join(", ")}`;
  }

  // A disputed patch: what each reader decided, for the admin who settles it.
  function paintReads(item) {
    $("reads-box").hidden = !item.reads;
    if (!item.reads) return;
    $("reads").replaceChildren(...item.reads.map((read) => {
      const li = document.createElement("li");
      const who = document.createElement("strong");
      who.textContent = read.reviewer;
      const label = classById.get(read.label);
      const what = read.action === "exclude" ? `exclude (${read.reason})`
        : read.action === "unsure" ? "unsure" : label ? label.name : read.action;
      li.append(who, `: ${what}`);
      if (read.comment) {
        const note = document.createElement("span");
        note.className = "meta";
        note.textContent = ` “${read.comment}”`;
        li.append(note);
      }
      return li;
    }));
  }

  function paint(item) {
    current = item;
    item.decidable = false; // again after an undo put it back: look first
    grid.replaceChildren(...item.cells);
    const label = classById.get(item.current_label);
    $("current-label").textContent = label ? label.name : "(none)";
    $("patch-meta").textContent =
      `${item.image_name} · slide ${item.slide} · ${item.split || "no split"} · ${item.queue}`;
    paintModel(item, label);
    paintCandidate(item);
    paintReads(item);
    if (similarBox && !similarBox.hidden) similar.setSeeds([item.patch], item.current_label);
    const suggested = suggestion(item);
    document.querySelectorAll("#class-buttons button").forEach((b) => {
      const id = Number(b.dataset.class);
      b.classList.toggle("current", id === item.current_label);
      b.classList.toggle("suggested", Boolean(suggested) && id === suggested.id);
    });
    centreView();
    shownAt = performance.now();
    // Two frames later the browser has painted this item (benchmarks read the time); the
    // body names it once keys may decide it, MIN_LOOK_MS after it appeared (tests wait so).
    requestAnimationFrame(() => requestAnimationFrame(() => {
      window.reviewPaintedAt = performance.now();
      window.reviewShownPatch = item.patch;
      setTimeout(() => {
        if (current !== item) return;
        item.decidable = true; // keys decide it from now on: one moment for both
        document.body.dataset.patch = String(item.patch);
      }, Math.max(0, MIN_LOOK_MS - (performance.now() - shownAt)));
    }));
  }

  function blank() {
    // Nothing on screen, so nothing for a key to decide.
    current = null;
    grid.replaceChildren();
    document.body.dataset.patch = "";
  }

  function showNext() {
    const item = buffer.shift();
    pending = null;
    if (!item) {
      blank();
      $("current-label").textContent = "–";
      $("patch-meta").textContent = "";
      $("model-box").hidden = true;
      $("candidate-box").hidden = true;
      $("reads-box").hidden = true;
      $("prototype-opinion").hidden = true;
      document.querySelectorAll("#class-buttons button").forEach((b) => {
        b.classList.remove("current", "suggested");
      });
      $("review-status").textContent = "";
      if (refused) return; // said why in refill; asking again would be refused again
      if (exhausted) {
        say(emptyWhy(), "info");
      } else {
        $("review-status").textContent = "loading…";
        (refill() || Promise.resolve()).then(() => {
          $("review-status").textContent = "";
          if (current || refused) return;
          // Decisions in flight or a hiccup: ask again, less often each time nothing comes.
          setTimeout(showNext, buffer.length ? 0 : Math.min(8000, 250 * 2 ** Math.min(misses, 5)));
        });
      }
      return;
    }
    if (item.isReady) paint(item);
    else {
      blank(); // never the previous patch's tiles under the next patch's decision
      pending = item;
      // A tile that never loads must not leave the reviewer on a blank viewer that no key
      // moves: after a while the patch is shown as far as it got (its centre, if missing,
      // can be skipped but not decided, see looked()).
      const slow = setTimeout(() => {
        if (pending !== item) return;
        pending = null;
        paint(item);
        say("Some tiles of this patch are slow to load; S skips it.", "warning");
      }, SLOW_TILES_MS);
      item.ready.then(() => {
        clearTimeout(slow);
        if (pending === item) { pending = null; paint(item); }
      });
    }
    refill();
  }

  function emptyWhy() {
    // Say why nothing is left for this reviewer, in the server's numbers.
    const e = elsewhere;
    const parts = [];
    if (e && e.held_by_others) {
      const until = e.free_at ? new Date(e.free_at).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"}) : "";
      parts.push(`${e.held_by_others} item${e.held_by_others === 1 ? " is" : "s are"} ` +
                 `leased to other reviewers${until ? ` (the first comes free at ${until})` : ""}`);
    }
    if (e && e.skipped_by_you) {
      parts.push(`${e.skipped_by_you} you skipped ${e.skipped_by_you === 1 ? "is" : "are"} kept from you for an hour`);
    }
    return parts.length ? `Nothing here for you right now: ${parts.join("; ")}. ` +
      "Pick another queue above, or come back later."
      : "This queue is empty for you. Pick another queue above.";
  }

  async function refreshCounts() {
    // Live queue sizes on the tabs, and how many of this queue are left.
    clearTimeout(countsTimer);
    countsTimer = setTimeout(refreshCounts, 15000);
    // The tabs count whole queues; "N of M left" counts this queue with the page's filters.
    const query = new URLSearchParams({queue: cfg.queue, ...cfg.filters}).toString();
    const {status, data} = await window.reviewApi.get(cfg.api, `/queues/?${query}`)
      .catch(() => ({}));
    if (status === 400 && query.includes("&")) {
      // a filter the API refuses (the next call says why): the tabs still count
      const plain = await window.reviewApi.get(cfg.api, "/queues/").catch(() => ({}));
      if (plain.status !== 200) return;
      Object.assign(data, plain.data);
    } else if (status !== 200) return;
    for (const [name, size] of Object.entries(data.sizes)) {
      const count = document.querySelector(`.queues a[data-queue="${name}"] .count`);
      if (count && size !== null) count.textContent = size;
    }
    const left = data.filtered ? data.filtered.size : data.sizes[cfg.queue];
    if (left === null || left === undefined) return;
    if (startSize === null) startSize = left;
    $("queue-left").textContent = `${left} of ${Math.max(startSize, left)} left in ${cfg.queue}`;
  }

  async function submit(item, body, path) {
    inflight += 1;
    const {status, data} = await api(path || `/patches/${item.patch}/reviews/`, body)
      .finally(() => { inflight -= 1; });
    if (status === 201) {
      done += body.action === "undo" ? -1 : 1;
      if (body.answer) document.body.dataset.answered = String(Number(document.body.dataset.answered || 0) + 1);
      $("done-count").textContent = `${done} decided on this page`;
      refreshCounts();
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

  // Whether a decision may be taken now on the patch on screen (else says why not).
  function looked() {
    if (!current) return false;
    const centre = current.cells[12];
    if (centre.decode && !(centre.complete && centre.naturalWidth)) {
      say("The centre patch has not loaded, so it cannot be decided: S skips it.", "warning");
      return false;
    }
    if (current.decidable) return true; // set MIN_LOOK_MS after it was painted
    const since = performance.now() - shownAt;
    say(`Ignored a key pressed ${Math.round(since)} ms after ${current.image_name} appeared: ` +
        "look at the patch, then decide.", "info");
    return false;
  }

  function decide(action, extra) {
    if (!looked()) return;
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
    history.push({item, undoable: true, saved: submit(item, body)});
  }

  // A candidate's answer: "yes" (the proposed class), "no" (never proposed as it again) or
  // "other" with the class it is; yes and other are review rows, undone like any decision.
  function answer(kind, label) {
    if (!looked()) return;
    const item = current;
    if (!item.candidate) { say("This patch is not a candidate here.", "info"); return; }
    const body = {proposed: item.candidate.label, answer: kind, patch_version: item.version,
      time_spent_ms: Math.round(performance.now() - shownAt)};
    if (kind === "other") body.label = label;
    say("");
    showNext();
    history.push({item, undoable: kind !== "no",
      saved: submit(item, body, `/candidates/${item.patch}/answer/`)});
  }

  function chooseClass(classId) {
    if (!looked()) return;
    if (candidates && current.candidate) {
      if (classId === current.candidate.label) answer("yes");
      else answer("other", classId);
      return;
    }
    if (classId === current.current_label) decide("confirm");
    else decide("correct", {label: classId});
  }

  async function undo() {
    const last = history.pop();
    if (!last) { say("Nothing to undo on this page.", "info"); return; }
    if (!last.undoable) {
      say(`Your "no" on ${last.item.image_name} stands: it will not be proposed as ` +
          `${last.item.candidate.name} again (its patch page still takes any decision).`, "info");
      return;
    }
    const state = await last.saved;
    if (!state) { say("That decision was not saved, so there is nothing to undo.", "info"); return; }
    const {status, data} = await api(`/patches/${last.item.patch}/reviews/`,
      {action: "undo", patch_version: state.version});
    if (status !== 201) { say(data.detail || `Undo failed (HTTP ${status})`, "error"); return; }
    done -= 1;
    $("done-count").textContent = `${done} decided on this page`;
    refreshCounts(); // the patch is back in its queues: the tabs and "N of M left" say so
    const again = await api(`/patches/${last.item.patch}/lease/`, {queue: cfg.queue});
    if (again.status !== 200) { say(again.data.detail || "Could not reopen it", "error"); return; }
    if (pending) { buffer.unshift(pending); pending = null; }
    if (current) buffer.unshift(current);
    const item = preload(again.data.item);
    await item.ready;
    paint(item);
    say(`Undone: ${item.image_name} is back.`, "info");
  }

  function acceptModel() {
    if (!looked()) return;
    const suggested = suggestion(current);
    if (!suggested) { say("The model has no opinion on this patch.", "info"); return; }
    chooseClass(suggested.id);
  }

  function skip() {
    if (!current) return; // needs no look: it decides nothing
    api(`/patches/${current.patch}/skip/`);
    showNext();
  }

  function toggleSimilar() {
    if (!similarBox) return;
    similarBox.hidden = !similarBox.hidden;
    if (!similarBox.hidden && current) similar.setSeeds([current.patch], current.current_label);
  }

  function toggle(attr, a, b) {
    viewer.dataset[attr] = viewer.dataset[attr] === a ? b : a;
    if (attr === "zoom") centreView();
  }

  // --- The viewer: size, centring, scale bar, pan, loupe ---------------------------------

  function fitViewer() {
    // The pan area fills the window below it; the banner floats above, so it never moves.
    const top = stage.getBoundingClientRect().top + window.scrollY;
    const height = `${Math.max(320, Math.floor(window.innerHeight - top - 12))}px`;
    viewer.style.height = height;
    $("decision").style.maxHeight = height;
    centreView();
  }

  function centreView() {
    viewer.scrollLeft = (viewer.scrollWidth - viewer.clientWidth) / 2;
    viewer.scrollTop = (viewer.scrollHeight - viewer.clientHeight) / 2;
    scaleBar();
  }

  function scaleBar() {
    const tile = grid.offsetWidth / 5; // CSS px per 224 px tile
    const pxPerUm = tile / 224 / UM_PER_PX;
    const um = [10, 20, 50, 100, 200, 500].find((u) => u * pxPerUm >= 80) || 500;
    const bar = $("scale-bar");
    bar.querySelector(".bar").style.width = `${um * pxPerUm}px`;
    bar.querySelector(".label").textContent = `${um} µm`;
    bar.hidden = !grid.offsetWidth;
  }

  const loupe = {
    show() {
      const centre = grid.querySelector(".centre");
      if (!current || !centre || !centre.src) return;
      const c = centre.getBoundingClientRect();
      const s = stage.getBoundingClientRect();
      const box = Math.min(2 * c.width, viewer.clientWidth - 8, viewer.clientHeight - 8);
      const el = $("loupe");
      Object.assign(el.style, {
        width: `${box}px`, height: `${box}px`,
        left: `${c.left - s.left + c.width / 2 - box / 2}px`,
        top: `${Math.max(4, c.top - s.top + c.height / 2 - box / 2)}px`,
        backgroundImage: `url("${centre.src}")`,
        backgroundSize: `${2 * c.width}px ${2 * c.height}px`,
      });
      el.hidden = false;
    },
    hide() { $("loupe").hidden = true; },
  };

  let pan = null;
  viewer.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    pan = {x: e.clientX, y: e.clientY, left: viewer.scrollLeft, top: viewer.scrollTop, id: e.pointerId};
    viewer.setPointerCapture(e.pointerId);
    viewer.classList.add("panning");
  });
  viewer.addEventListener("pointermove", (e) => {
    if (!pan || e.pointerId !== pan.id) return;
    viewer.scrollLeft = pan.left - (e.clientX - pan.x);
    viewer.scrollTop = pan.top - (e.clientY - pan.y);
  });
  const endPan = (e) => {
    if (!pan || e.pointerId !== pan.id) return;
    pan = null;
    viewer.classList.remove("panning");
  };
  viewer.addEventListener("pointerup", endPan);
  viewer.addEventListener("pointercancel", endPan);
  viewer.addEventListener("dragstart", (e) => e.preventDefault());
  window.addEventListener("resize", fitViewer);
  window.addEventListener("blur", loupe.hide);

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
    // A focused button must never turn Space or Enter into a click: only the keys below
    // decide anything.
    if ((key === " " || key === "Enter") && event.target.closest("button")) {
      event.preventDefault();
    }
    if (key === " ") {
      event.preventDefault();
      if (!event.repeat) loupe.show();
      return;
    }
    const help = $("help");
    if (key === "Escape") {
      help.hidden = true; exclude.close(); say("");
      if (similarBox) similarBox.hidden = true;
      return;
    }
    if (exclude.isOpen()) {
      const reason = cfg.reasons[Number(key) - 1];
      if (reason) { event.preventDefault(); exclude.choose(reason); }
      return;
    }
    const lower = key.length === 1 ? key.toLowerCase() : key;
    if (event.repeat) { event.preventDefault(); return; } // a held key: one decision, not many
    const actions = {
      Enter: () => (candidates ? answer("yes") : decide("confirm")),
      n: () => (candidates ? answer("no") : undefined),
      m: toggleSimilar,
      ";": acceptModel,
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
  document.addEventListener("keyup", (event) => {
    if (event.key === " ") { event.preventDefault(); loupe.hide(); }
  });
  // Buttons act on the click and keep no focus, so no later key press can "press" them.
  const review = $("review");
  review.addEventListener("mousedown", (e) => {
    if (e.target.closest("button")) e.preventDefault();
  });
  review.addEventListener("click", (e) => {
    const button = e.target.closest("button");
    if (button && e.detail !== 0) button.blur();
    // The second click of a double click would decide the next patch, shown meanwhile.
    if (button && e.detail > 1) e.stopPropagation();
  }, {capture: true});
  $("class-buttons").addEventListener("click", (e) => {
    const button = e.target.closest("button[data-class]");
    if (button) chooseClass(Number(button.dataset.class));
  });
  document.querySelector(".action-buttons").addEventListener("click", (e) => {
    const button = e.target.closest("button[data-action]");
    if (!button) return;
    const a = button.dataset.action;
    const run = {confirm: () => (candidates ? answer("yes") : decide("confirm")),
      no: () => answer("no"), similar: toggleSimilar, unsure: () => decide("unsure"),
      accept: acceptModel,
      exclude: exclude.open, skip, undo, help: () => { $("help").hidden = !$("help").hidden; },
      context: () => toggle("context", "on", "off"), zoom: () => toggle("zoom", "fit", "full")};
    run[a]();
  });
  $("exclude-box").addEventListener("click", (e) => {
    const button = e.target.closest("button[data-reason]");
    if (button) exclude.choose(button.dataset.reason);
  });

  fitViewer();
  refreshCounts();
  refill().then(() => showNext());
})();
