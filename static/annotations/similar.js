// "More like this": the patches most similar to one or several seeds, with the API's
// filters (slide, split, status, label), shared by the patch page and the review page.
// Each result can join the seeds; a reviewer can propose unlabelled patches like the seeds
// as a class (a candidates job). "Its class, most (a)typical first" lists the patch's class
// by cosine to the class prototype instead.
"use strict";

window.similarPanel = (() => {
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    });
    node.append(...children);
    return node;
  }

  // box: the panel element (data-api, data-seeds: comma-separated patch ids).
  function attach(box) {
    const api = box.dataset.api;
    const results = box.querySelector(".similar-results");
    const status = box.querySelector(".similar-status");
    const form = box.querySelector(".similar-filters");
    let seeds = (box.dataset.seeds || "").split(",").filter(Boolean).map(Number);
    let asked = 0;

    function params() {
      const data = new FormData(form);
      const mode = data.get("mode");
      const query = new URLSearchParams({k: box.dataset.k || "12"});
      if (mode && box.dataset.class) {
        query.set("prototype", box.dataset.class);
        query.set("order", mode);
      } else {
        query.set("seeds", seeds.join(","));
      }
      data.forEach((value, key) => { if (value !== "" && key !== "mode") query.set(key, value); });
      return query;
    }

    async function load() {
      if (!seeds.length) return;
      const mine = ++asked;
      status.textContent = "searching…";
      const {status: code, data} = await window.reviewApi.get(api, `/similar/?${params()}`);
      if (mine !== asked) return; // a newer query is on its way
      if (code === 409) {
        status.textContent = data.detail;
        setTimeout(load, 3000);
        return;
      }
      if (code !== 200) {
        status.textContent = data.detail || JSON.stringify(data);
        return;
      }
      results.replaceChildren(...data.results.map((r) => {
        const add = el("button", {type: "button", class: "seed-add", "data-patch": r.patch,
          title: "use this patch as a seed too"}, seeds.includes(r.patch) ? "seed" : "+ seed");
        add.disabled = seeds.includes(r.patch);
        return el("li", {"data-patch": r.patch},
          el("a", {href: r.url, title: `${r.image_name} · ${r.slide} · ${r.split || "no split"} · ${r.status}`},
            el("img", {src: r.tile, alt: r.image_name, width: "96", height: "96", loading: "lazy"})),
          el("span", {class: "similar-caption"}, `${r.similarity.toFixed(3)} · ${r.current_label || "unlabelled"}`),
          add);
      }));
      const mode = new FormData(form).get("mode");
      status.textContent = (mode && box.dataset.class
        ? `${data.results.length} of its class, most ${mode} first (cosine to the class prototype)`
        : `${data.results.length} most similar to ${seeds.length} seed${seeds.length === 1 ? "" : "s"}`) +
        ` in an index of ${data.index.size}${data.index.stale ? " (being updated)" : ""}`;
      box.dataset.loaded = String(data.results.length);
    }

    results.addEventListener("click", (e) => {
      const add = e.target.closest("button.seed-add");
      if (!add) return;
      seeds.push(Number(add.dataset.patch));
      load();
    });
    form.addEventListener("change", load);
    form.addEventListener("submit", (e) => { e.preventDefault(); load(); });
    const propose = box.querySelector(".similar-propose");
    if (propose) {
      propose.addEventListener("submit", async (e) => {
        e.preventDefault();
        const label = Number(new FormData(propose).get("label"));
        const {status: code, data} = await window.reviewApi.post(api, "/similarity-jobs/",
          {kind: "candidates", label, seeds, k: 50});
        status.textContent = code === 201
          ? `Proposing unlabelled patches like these ${seeds.length} as candidates (job ${data.id}); review them in the candidates queue.`
          : (data.detail || JSON.stringify(data));
      });
    }
    return {
      load,
      setSeeds(ids, classId) {
        seeds = ids.slice();
        box.dataset.class = classId ? String(classId) : "";
        load();
      },
    };
  }

  return {attach};
})();
