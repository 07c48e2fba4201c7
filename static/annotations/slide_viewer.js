// The slide page: OpenSeadragon over the slide's Deep Zoom tiles, and a canvas on top that
// draws one heatmap cell per 224 px tile (colour = predicted class, opacity = confidence).
// Only the cells in view are drawn, so a slide of 100k tiles pans as smoothly as a small one.
(function () {
  "use strict";
  const host = document.getElementById("slide-viewer");
  if (!host || typeof OpenSeadragon === "undefined") return;

  const viewer = OpenSeadragon({
    element: host,
    tileSources: host.dataset.dzi,
    prefixUrl: host.dataset.osdImages,
    showNavigator: true,
    navigatorPosition: "BOTTOM_RIGHT",
    gestureSettingsMouse: { clickToZoom: false },
    maxZoomPixelRatio: 2,
  });
  window.slideViewer = viewer; // for the console (and the browser tests)

  const canvas = document.createElement("canvas");
  canvas.className = "slide-heatmap";
  canvas.id = "heatmap-canvas";
  viewer.canvas.appendChild(canvas);
  const ctx = canvas.getContext("2d");

  const state = { map: null, grid: null, hidden: new Set(), opacity: Number(document.getElementById("heatmap-opacity")?.value ?? 70) / 100, show: true };
  const colours = new Map();

  function rgb(hex) {
    const n = parseInt(hex.slice(1), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }

  function load() {
    fetch(host.dataset.heatmap, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(r.status))))
      .then((map) => {
        state.map = map;
        for (const c of map.classes) colours.set(c.id, rgb(c.colour));
        // cell index by (row, col) for clicks and for drawing only what is in view
        state.grid = new Map();
        for (let i = 0; i < map.patch.length; i++) state.grid.set(map.row[i] * map.cols + map.col[i], i);
        host.dataset.cells = String(map.patch.length);
        host.dataset.predicted = String(map.label.filter((l) => l !== null).length);
        showFocus();
        draw();
      })
      .catch((err) => { host.dataset.heatmapError = String(err); });
  }

  function draw() {
    const rect = viewer.canvas.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(rect.width * ratio) || canvas.height !== Math.round(rect.height * ratio)) {
      canvas.width = Math.round(rect.width * ratio);
      canvas.height = Math.round(rect.height * ratio);
      canvas.style.width = rect.width + "px";
      canvas.style.height = rect.height + "px";
    }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, rect.width, rect.height);
    const map = state.map;
    if (!map || !state.show || viewer.world.getItemCount() === 0) return;
    const item = viewer.world.getItemAt(0);
    const tile = map.tile_px;
    const topLeft = item.viewerElementToImageCoordinates(new OpenSeadragon.Point(0, 0));
    const bottomRight = item.viewerElementToImageCoordinates(new OpenSeadragon.Point(rect.width, rect.height));
    const c0 = Math.max(0, Math.floor(topLeft.x / tile)), c1 = Math.min(map.cols - 1, Math.floor(bottomRight.x / tile));
    const r0 = Math.max(0, Math.floor(topLeft.y / tile)), r1 = Math.min(map.rows - 1, Math.floor(bottomRight.y / tile));
    const origin = item.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0));
    const step = item.imageToViewerElementCoordinates(new OpenSeadragon.Point(tile, tile));
    const w = step.x - origin.x, h = step.y - origin.y;
    for (let r = r0; r <= r1; r++) {
      for (let c = c0; c <= c1; c++) {
        const i = state.grid.get(r * map.cols + c);
        if (i === undefined) continue;
        const label = map.label[i];
        if (label === null || state.hidden.has(label)) continue;
        const [R, G, B] = colours.get(label) || [128, 128, 128];
        ctx.fillStyle = `rgba(${R},${G},${B},${(state.opacity * map.confidence[i]).toFixed(3)})`;
        ctx.fillRect(origin.x + c * w, origin.y + r * h, Math.ceil(w), Math.ceil(h));
      }
    }
    if (focus) {
      ctx.strokeStyle = "#111";
      ctx.lineWidth = 2;
      ctx.strokeRect(origin.x + (focus.x / tile) * w, origin.y + (focus.y / tile) * h, w, h);
    }
  }

  // Opened from a patch (?x=&y=, level-0 pixels): show its 5x5 context and outline the tile.
  const asked = new URLSearchParams(window.location.search);
  const focus = asked.has("x") && asked.has("y")
    ? { x: Number(asked.get("x")), y: Number(asked.get("y")) } : null;

  function showFocus() {
    if (!focus || !state.map || viewer.world.getItemCount() === 0) return;
    const t = state.map.tile_px;
    const bounds = viewer.world.getItemAt(0).imageToViewportRectangle(focus.x - 2 * t, focus.y - 2 * t, 5 * t, 5 * t);
    viewer.viewport.fitBounds(bounds, true);
    host.dataset.focused = `${focus.x},${focus.y}`;
  }

  viewer.addHandler("open", load);
  viewer.addHandler("update-viewport", draw);
  viewer.addHandler("resize", draw);

  // A click (not a drag) on a tile with a patch opens that patch, where the usual keys review it.
  viewer.addHandler("canvas-click", (event) => {
    if (!event.quick || !state.map || viewer.world.getItemCount() === 0) return;
    const point = viewer.world.getItemAt(0).viewerElementToImageCoordinates(event.position);
    const col = Math.floor(point.x / state.map.tile_px), row = Math.floor(point.y / state.map.tile_px);
    const i = state.grid.get(row * state.map.cols + col);
    if (i === undefined || col < 0 || col >= state.map.cols) return;
    event.preventDefaultAction = true;
    window.location.href = host.dataset.patchUrl.replace(/\/0\/$/, `/${state.map.patch[i]}/`);
  });

  const opacity = document.getElementById("heatmap-opacity");
  if (opacity) opacity.addEventListener("input", () => { state.opacity = opacity.value / 100; draw(); });
  const show = document.getElementById("heatmap-show");
  if (show) show.addEventListener("change", () => { state.show = show.checked; draw(); });
  document.querySelectorAll(".class-toggle").forEach((box) => {
    box.addEventListener("change", () => {
      const id = Number(box.value);
      if (box.checked) state.hidden.delete(id); else state.hidden.add(id);
      draw();
    });
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "h" || event.target.closest("input, textarea, select") || !show) return;
    show.checked = !show.checked;
    show.dispatchEvent(new Event("change"));
  });

  // "Significant areas": each link pans and zooms the viewer to the area's bounds.
  document.querySelectorAll(".area-link").forEach((link) => {
    link.addEventListener("click", () => {
      if (viewer.world.getItemCount() === 0) return;
      const d = link.dataset, margin = Number(d.w) * 0.5;
      const bounds = viewer.world.getItemAt(0).imageToViewportRectangle(
        Number(d.x) - margin, Number(d.y) - margin, Number(d.w) + 2 * margin, Number(d.h) + 2 * margin);
      viewer.viewport.fitBounds(bounds);
      host.dataset.focused = `${d.x},${d.y}`;
      // The list sits below the viewer: bring the whole viewer into the window to show it.
      host.scrollIntoView({block: "nearest", behavior: "instant"});
    });
  });
})();
