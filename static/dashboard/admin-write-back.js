// The message after saving a note says where its write-back is ("Sending to OneUptime…", then delivered or
// held) and follows it without a reload: it asks the admin about once a second, then less often, and stops
// at an outcome (or after ten minutes: the list's write-back column still tells).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const element = document.querySelector(".write-back-progress[data-url]");
  if (!element) {
    return;
  }
  const started = Date.now();
  const ask = async () => {
    try {
      const response = await fetch(element.dataset.url, { credentials: "same-origin", cache: "no-store" });
      if (response.ok) {
        const progress = await response.json();
        element.textContent = progress.words;
        element.dataset.stage = progress.stage;
        if (progress.final) {
          return;
        }
      }
    } catch (error) {
      console.warn("write-back progress unavailable", error);
    }
    const age = Date.now() - started;
    if (age < 600000) {
      setTimeout(ask, age < 30000 ? 1000 : 5000);
    }
  };
  setTimeout(ask, 500);
});
