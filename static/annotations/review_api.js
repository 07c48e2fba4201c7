// What both review pages share: POSTs to the review API with the CSRF token, the banner,
// and the queue filters as the API wants them.
"use strict";

window.reviewApi = (() => {
  function csrf() {
    const m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  return {
    // {status, data}; data is {} for an empty or non-JSON answer.
    async post(base, path, body) {
      const response = await fetch(base + path, {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrf()},
        body: JSON.stringify(body || {}),
      });
      const data = response.status === 204 ? {} : await response.json().catch(() => ({}));
      return {status: response.status, data};
    },

    // {status, data} of a GET (same-origin session).
    async get(base, path) {
      const response = await fetch(base + path, {credentials: "same-origin"});
      return {status: response.status, data: await response.json().catch(() => ({}))};
    },

    say(text, kind) {
      const banner = document.getElementById("banner");
      banner.textContent = text;
      banner.classList.remove("info", "warning", "error");
      banner.classList.add(kind || "info"); // keeps its placement (e.g. "toast")
      banner.hidden = !text;
    },

    // Query-string filters (strings) -> the next endpoint's body (ids as numbers).
    filters(raw) {
      const out = {};
      for (const [k, v] of Object.entries(raw)) out[k] = k === "split" ? v : Number(v);
      return out;
    },
  };
})();
