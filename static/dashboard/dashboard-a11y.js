// The dashboard for people who do not see it: pushed changes are read out politely, a few seconds' worth
// at a time ("3 new events. Build Release failed."), never one announcement per row; and after "Older
// events" the keyboard's focus lands on the first row it brought, not back at the top of the page.
(function () {
  "use strict";

  var BATCH_MS = 2000;
  var region = document.getElementById("announcer");
  if (!region) return;
  var fresh = 0, failed = [], timer = null, snapshot = false;
  var knownFailures = {};

  function failures() {
    return Array.prototype.slice.call(document.querySelectorAll("#live-list .live--failed[id]"));
  }
  function remember() {
    knownFailures = {};
    failures().forEach(function (row) { knownFailures[row.id] = true; });
  }
  function say() {
    timer = null;
    var parts = [];
    if (fresh) parts.push(fresh + " new event" + (fresh === 1 ? "" : "s") + ".");
    failed.forEach(function (name) { parts.push("Build " + name + " failed."); });
    fresh = 0;
    failed = [];
    if (parts.length) region.textContent = parts.join(" ");
  }

  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    snapshot = /^<!--snapshot /.test(event.detail.message); // a (re)connect's fresh copy: nothing new to say
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    if (snapshot) { remember(); return; }
    failures().forEach(function (row) {
      if (knownFailures[row.id]) return;
      knownFailures[row.id] = true;
      var title = row.querySelector(".live-title");
      failed.push(title ? title.textContent.replace(/\s+/g, " ").trim() : "a build");
    });
    if ((fresh || failed.length) && !timer) timer = setTimeout(say, BATCH_MS);
  });
  var feed = document.querySelector(".feed-column");
  if (feed) {
    new MutationObserver(function (changes) {
      changes.forEach(function (change) {
        change.addedNodes.forEach(function (node) { if (node.nodeType === 1 && node.classList.contains("is-new")) fresh += 1; });
      });
      if (fresh && !timer) timer = setTimeout(say, BATCH_MS);
    }).observe(feed, { childList: true, subtree: true });
  }

  // "Older events" replaces itself with the next page of rows: focus goes to the first of them.
  var before = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "feed-more") before = event.detail.target.previousElementSibling;
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!before) return;
    var first = before.isConnected ? before.nextElementSibling : null;
    before = null;
    if (first && first.classList.contains("event")) {
      first.tabIndex = -1;
      first.focus();
    }
  });

  document.addEventListener("DOMContentLoaded", remember);
})();
