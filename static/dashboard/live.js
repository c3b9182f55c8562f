// Pulseboard's page behaviour around htmx's WebSocket extension.
//
// A wall display runs for weeks with nobody near it, so this file never gives up and never lies:
// it reconnects by itself (htmx's extension only retries after some close codes), shows a stale
// banner whenever the socket is down, the poller is late or an upstream keeps failing (from
// /healthz), reloads after a deploy once the server answers, and stops only for a revoked screen.
(function () {
  "use strict";

  var HEALTH_EVERY_MS = 15000;
  var SILENCE_LIMIT_MS = 50000; // the server sends a heartbeat every 20 s
  var FINISHED_ROW_MS = 60000; // a finished build stays in "Running now" for a minute
  var REVOKED = 4403, RELOAD = 4100, LOGIN_REQUIRED = 4401, TOO_MANY = 4429;
  var TOO_MANY_RETRY_MS = 60000; // another tab or TV holds this link's sockets: ask again now and then, not in a loop
  var RETRIED_BY_HTMX = [1006, 1011, 1012, 1013];

  var state = { open: false, connecting: true, revoked: false, tooMany: false, lastMessage: Date.now(), failures: 0, health: null, since: null };
  var body = document.body;
  var zone = browserZone(body.dataset.timeZone); // a wall's screen zone; otherwise the viewer's own

  // A zone this browser refuses (say, saved before the server checked) must not stop the clock and
  // every time on the page: the viewer's own zone is better than nothing.
  function browserZone(name) {
    if (!name) return undefined;
    try { new Intl.DateTimeFormat(undefined, { timeZone: name }); return name; } catch (error) { return undefined; }
  }

  // ---- time: relative text, absolute time with its zone on hover ----
  function absolute(date) {
    return new Intl.DateTimeFormat(undefined, {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
      timeZone: zone, timeZoneName: "short",
    }).format(date);
  }
  function clock(date) {
    return new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", timeZone: zone, timeZoneName: "short" }).format(date);
  }
  function relative(date) {
    var seconds = Math.round((Date.now() - date.getTime()) / 1000);
    if (seconds < 45) return "just now";
    var minutes = Math.round(seconds / 60);
    if (minutes < 60) return minutes + " min ago";
    var hours = Math.round(minutes / 60);
    if (hours < 48) return hours + " h ago";
    return Math.round(hours / 24) + " days ago";
  }
  function renderTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (element) {
      var date = new Date(element.getAttribute("datetime"));
      if (isNaN(date)) return;
      element.title = absolute(date);
      element.textContent = element.classList.contains("clock") ? clock(date) : relative(date);
    });
  }

  // ---- upstream colours (CSP forbids inline styles in markup; the CSSOM is fine) ----
  function applyColors(root) {
    (root || document).querySelectorAll("[data-color]").forEach(function (element) {
      if (/^#[0-9a-fA-F]{3,8}$/.test(element.dataset.color)) element.style.setProperty("--badge-color", element.dataset.color);
    });
  }

  function refresh(root) {
    renderTimes(root);
    applyColors(root);
    finishRows();
  }

  // ---- finished builds leave the live panel after a while ----
  function finishRows() {
    document.querySelectorAll("#live-list [data-finished]:not([data-finished-at])").forEach(function (row) {
      row.dataset.finishedAt = String(Date.now());
      setTimeout(function () { if (row.isConnected) row.remove(); }, FINISHED_ROW_MS);
    });
  }

  // ---- the stale banner ----
  function banner() {
    var reason = "";
    if (state.revoked) reason = "";
    else if (state.tooMany && !state.open) reason = "too many screens are open with this link or login; trying again every minute";
    else if (!state.open && !state.connecting) reason = "connection lost, reconnecting" + (state.since ? " · showing data from " + clock(state.since) : "");
    else if (state.health && state.health.status !== "ok") reason = healthReason(state.health);
    var element = document.getElementById("stale-banner");
    if (!element) return;
    element.hidden = !reason;
    element.querySelector(".stale-reason").textContent = reason;
    body.classList.toggle("is-stale", !!reason);
    var connection = document.getElementById("connection");
    if (connection) {
      connection.dataset.state = state.open ? (reason ? "stale" : "live") : "down";
      connection.textContent = state.open ? (reason ? "stale" : "live") : "reconnecting…";
    }
  }
  function healthReason(health) {
    var names = { hth: "Helix TeamHub", oneuptime: "OneUptime" };
    var parts = [];
    Object.keys(health.sources || {}).forEach(function (key) {
      var source = health.sources[key];
      if (!source.configured || source.ok) return;
      var when = source.last_success_at ? "last synced " + relative(new Date(source.last_success_at)) : "never synced";
      parts.push((names[key] || key) + " " + when + (source.reason ? " (" + source.reason + ")" : ""));
    });
    return parts.join("; ") || "data may be out of date";
  }

  // ---- /healthz: staleness of the poller and the upstreams, and the server's version ----
  // A wall is nobody's session: its kiosk key earns it the sync times and short reasons strangers don't get.
  var kioskKey = new URLSearchParams(location.search).get("key");
  var healthUrl = kioskKey ? "/healthz?" + new URLSearchParams({ key: kioskKey }) : "/healthz";

  function checkHealth() {
    return fetch(healthUrl, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (health) {
        if (!health) return null;
        if (health.version && body.dataset.version && health.version !== body.dataset.version) {
          location.reload(); // a deploy: the server answered, so the reload will not land on an error page
          return health;
        }
        state.health = health;
        banner();
        return health;
      })
      .catch(function () { return null; });
  }

  // ---- the socket ----
  function socketElement() { return document.getElementById("socket"); }

  function reconnect() {
    var old = socketElement();
    if (!old || state.revoked) return;
    var fresh = old.cloneNode(false);
    old.remove(); // the extension closes the old socket once it notices its element is gone
    body.appendChild(fresh);
    htmx.process(fresh);
  }

  function retryLater() {
    var delay = Math.min(60000, 1000 * Math.pow(2, Math.min(state.failures, 6))) * (0.5 + Math.random() / 2);
    setTimeout(function () {
      if (state.open) return; // htmx's own retry got there first
      checkHealth().then(function (health) {
        // Refused again and again while the server answers: the login or the kiosk link is no longer
        // good. Reloading shows the login page or the "revoked" page instead of retrying forever.
        if (health && state.failures >= 3) location.reload();
        else reconnect();
      });
    }, delay);
  }

  document.addEventListener("htmx:wsOpen", function () {
    state.lastMessage = Date.now();
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    var firstSinceOpen = !state.open;
    state.open = true;
    state.connecting = false;
    state.failures = 0;
    state.tooMany = false;
    state.since = new Date();
    state.lastMessage = Date.now();
    if (firstSinceOpen) checkHealth(); // the snapshot arrived: now find out whether the data behind it is fresh
    banner();
  });
  document.addEventListener("htmx:wsClose", function (event) {
    var code = event.detail && event.detail.event ? event.detail.event.code : 1006;
    state.open = false;
    state.connecting = false;
    if (code === REVOKED) {
      state.revoked = true;
      var element = socketElement();
      if (element) element.remove();
      body.classList.add("is-revoked");
      document.querySelectorAll(".revoked").forEach(function (notice) { notice.hidden = false; });
      banner();
      return;
    }
    if (code === TOO_MANY) {
      state.tooMany = true;
      banner();
      setTimeout(reconnect, TOO_MANY_RETRY_MS * (0.75 + Math.random() / 2));
      return;
    }
    state.failures += 1;
    banner();
    if (code === RELOAD || code === LOGIN_REQUIRED) { // new settings, or the login ended: the server shows which
      checkHealth().then(function (health) { if (health) location.reload(); else retryLater(); });
      return;
    }
    if (RETRIED_BY_HTMX.indexOf(code) < 0 || state.failures >= 3) retryLater();
  });

  // A connection can die without a close: no heartbeat for too long means start again.
  setInterval(function () {
    if (state.open && Date.now() - state.lastMessage > SILENCE_LIMIT_MS) {
      state.open = false;
      banner();
      reconnect();
    }
  }, 5000);

  // ---- the wall: text scale and panel rotation, both from the screen's settings on the server ----
  function setupWall() {
    if (!body.classList.contains("wall-page")) return;
    var scale = parseFloat(body.dataset.textScale || "1");
    if (scale > 0) document.documentElement.style.setProperty("--scale", String(scale));
    var slots = Array.prototype.slice.call(document.querySelectorAll("[data-panel-slot]"));
    if (body.dataset.rotate !== "true" || slots.length < 2) return;
    var index = 0;
    function show() {
      slots.forEach(function (slot, position) { slot.hidden = position !== index; });
      var dwell = parseInt(slots[index].dataset.dwell || "20", 10);
      setTimeout(function () { index = (index + 1) % slots.length; show(); }, Math.max(3, dwell) * 1000);
    }
    show();
  }

  document.addEventListener("htmx:afterSettle", function (event) { refresh(event.target); });
  document.addEventListener("htmx:wsAfterMessage", function () { refresh(document); });
  document.addEventListener("DOMContentLoaded", function () {
    refresh(document);
    setupWall();
    banner();
    checkHealth();
    setInterval(function () { renderTimes(document); }, 30000);
    setInterval(checkHealth, HEALTH_EVERY_MS);
    setTimeout(function () { state.connecting = false; banner(); }, 8000); // a first connect that never comes is news
  });
})();
