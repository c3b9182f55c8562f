// The incident note form's live preview. The server renders and sanitizes the markdown (dashboard/markdown.py),
// exactly as the pages do, so what the preview shows is what the wall will show.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const textarea = document.getElementById("id_note");
  const preview = document.getElementById("note-preview");
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]");
  if (!textarea || !preview || !csrf) {
    return; // a read-only note: nothing to preview but what is shown
  }
  let timer = null;
  let inFlight = null;
  textarea.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      inFlight?.abort();
      inFlight = new AbortController();
      try {
        const response = await fetch(preview.dataset.url, {
          method: "POST",
          body: new URLSearchParams({ note: textarea.value }),
          headers: { "X-CSRFToken": csrf.value },
          credentials: "same-origin",
          signal: inFlight.signal,
        });
        if (response.ok) {
          preview.innerHTML = await response.text();
        }
      } catch (error) {
        if (error.name !== "AbortError") {
          console.warn("note preview failed", error);
        }
      }
    }, 300);
  });
});
