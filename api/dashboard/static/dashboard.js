// fitexplain dashboard: confirmation before actions, and live parts refreshed without reloading the page.
// Loaded from this site only (the Content-Security-Policy forbids inline script); reads no token: the
// session is an HttpOnly cookie that scripts cannot see.
"use strict";

document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// <div data-refresh="URL" data-every="ms" [data-reload-when="selector"]>: its content is replaced by the
// server-rendered fragment at URL every `ms`; once the fragment holds `selector`, the page reloads once
// (a job that has just finished: its charts are drawn by the full page).
function keepFresh(part) {
  const every = Number(part.dataset.every || 2000);
  const tick = async () => {
    try {
      const response = await fetch(part.dataset.refresh, {credentials: "same-origin", cache: "no-store"});
      if (response.redirected || !response.ok) return;  // signed out or gone: stop refreshing
      const fragment = new DOMParser().parseFromString(await response.text(), "text/html");
      part.replaceChildren(...fragment.body.childNodes);
      const reloadWhen = part.dataset.reloadWhen;
      if (reloadWhen && part.querySelector(reloadWhen)) {
        window.location.reload();
        return;
      }
    } catch (error) {
      // the API restarting or the network blinking: try again at the next tick
    }
    window.setTimeout(tick, every);
  };
  window.setTimeout(tick, every);
}

document.querySelectorAll("[data-refresh]").forEach(keepFresh);
