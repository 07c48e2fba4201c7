// The project page's plots: PNG download drawn from the inline SVG on a canvas (2x, white
// background), the "table" toggle that shows the numbers a plot stands for, and the plots
// the page fetches after it shows (figure[data-plot-src]: their numbers grow with the
// review history, so the page does not wait for them).
"use strict";

(() => {
  function png(figure, file) {
    const svg = figure.querySelector("svg");
    const width = Number(svg.getAttribute("width"));
    const height = Number(svg.getAttribute("height"));
    const source = new XMLSerializer().serializeToString(svg);
    const url = URL.createObjectURL(new Blob([source], {type: "image/svg+xml"}));
    const image = new Image();
    image.onload = () => {
      const canvas = document.createElement("canvas");
      canvas.width = width * 2;
      canvas.height = height * 2;
      const ctx = canvas.getContext("2d");
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      ctx.scale(2, 2);
      ctx.drawImage(image, 0, 0, width, height);
      URL.revokeObjectURL(url);
      canvas.toBlob((blob) => {
        const a = document.createElement("a");
        a.href = URL.createObjectURL(blob);
        a.download = file;
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(a.href), 1000);
      }, "image/png");
    };
    image.src = url;
  }

  async function load(figure) {
    const note = figure.querySelector(".plot-loading");
    try {
      const response = await fetch(figure.dataset.plotSrc, {credentials: "same-origin"});
      if (!response.ok) throw new Error(`${response.status}`);
      const parsed = new DOMParser().parseFromString(await response.text(), "image/svg+xml");
      const svg = parsed.documentElement;
      if (svg.nodeName !== "svg") throw new Error("not an SVG");
      figure.insertBefore(document.importNode(svg, true), figure.firstChild);
      note?.remove();
    } catch (error) {
      if (note) note.textContent = `${note.textContent.replace(/loading…$/, "")}not available (${error.message}).`;
    }
  }

  document.querySelectorAll("figure[data-plot-src]").forEach(load);

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.plot-png, button.plot-table");
    if (!button) return;
    if (button.classList.contains("plot-png")) {
      png(button.closest("figure"), button.dataset.file);
      return;
    }
    const table = document.getElementById(button.getAttribute("aria-controls"));
    if (!table) return;
    table.hidden = !table.hidden;
    button.setAttribute("aria-expanded", String(!table.hidden));
  });
})();
