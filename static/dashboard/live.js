// Pulseboard's page behaviour around htmx's WebSocket extension.
//
// A wall display runs for weeks with nobody near it, so this file never gives up and never lies:
// it reconnects by itself (htmx's extension only retries after some close codes), shows a stale
// banner whenever the socket is down, the poller is late or an upstream keeps failing (from
// /healthz), reloads after a deploy once the server answers, and stops only for a revoked screen.
(function () {
  "use strict";

  var HEALTH_EVERY_MS = 15000;
  var DEGRADED_RECHECK_MS = 2000;
  var SILENCE_LIMIT_MS = 50000; // the server sends a heartbeat every 20 s
  var FINISHED_ROW_MS = 60000; // a finished build stays in "Running now" for a minute
  var REVOKED = 4403, RELOAD = 4100, LOGIN_REQUIRED = 4401, TOO_MANY = 4429;
  var TOO_MANY_RETRY_MS = 60000; // another tab or TV holds this link's sockets: ask again now and then, not in a loop
  var RETRIED_BY_HTMX = [1006, 1011, 1012, 1013];

  var state = { open: false, connecting: true, revoked: false, tooMany: false, lastMessage: Date.now(), lastData: 0, failures: 0, health: null, since: null };
  var body = document.body;
  var zone = browserZone(body.dataset.timeZone); // a wall's screen zone; otherwise the viewer's own

  // A zone this browser refuses (say, saved before the server checked) must not stop the clock and
  // every time on the page: the viewer's own zone is better than nothing.
  function browserZone(name) {
    if (!name) return undefined;
    try { new Intl.DateTimeFormat(undefined, { timeZone: name }); return name; } catch (error) { return undefined; }
  }

  // ---- time: 24-hour, with the zone's name; relative text beside or on hover ----
  var formats = {};
  function format(name, options) {
    if (!formats[name]) formats[name] = new Intl.DateTimeFormat(undefined, Object.assign({ hourCycle: "h23", timeZone: zone }, options));
    return formats[name];
  }
  function absolute(date) {
    return format("absolute", { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short" }).format(date);
  }
  function clock(date) {
    return format("clock", { hour: "2-digit", minute: "2-digit", second: "2-digit" }).format(date);
  }
  function zoneName(date) {
    var part = format("zone", { timeZoneName: "short" }).formatToParts(date).filter(function (p) { return p.type === "timeZoneName"; })[0];
    return part ? part.value : "";
  }
  // As the server's `span` filter says it; `precise` keeps the seconds past a minute, as beside a fixed
  // "acknowledged in 1 min 15 s" a running "open for 1 min 48 s" must (tiles and "ago" say whole minutes).
  function span(seconds, precise) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min" + (precise && seconds % 60 ? " " + (seconds % 60) + " s" : "");
    var hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + " h " + (minutes % 60) + " min";
    return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
  }
  function relative(date) {
    var seconds = (Date.now() - date.getTime()) / 1000;
    return seconds < -30 ? "in " + span(-seconds) : span(seconds) + " ago";
  }
  var timeText = {
    ago: relative,
    both: function (date) { return absolute(date) + " · " + relative(date); },
    absolute: absolute,
    duration: function (date) { return span((Date.now() - date.getTime()) / 1000); },
    elapsed: function (date) { return span((Date.now() - date.getTime()) / 1000, true); },
    // "failing since 14:02": the hour and minute in the screen's zone, with the day when it is not today
    at: function (date) {
      var day = format("day", { year: "numeric", month: "2-digit", day: "2-digit" });
      var hm = format("hm", { hour: "2-digit", minute: "2-digit" }).format(date);
      return day.format(date) === day.format(new Date()) ? hm : format("dm", { month: "short", day: "numeric" }).format(date) + " " + hm;
    },
    remaining: function (date) {
      if (!state.open || body.classList.contains("is-stale")) return "—"; // not live: no countdown, it would be a guess
      var left = (date.getTime() - Date.now()) / 1000;
      return left > 0 ? "~" + span(left) + " left" : "over by " + span(-left);
    },
    updated: function (date) { return relative(new Date(Math.max(date.getTime(), state.lastData))); },
  };
  function renderTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (element) {
      var date = new Date(element.getAttribute("datetime"));
      if (isNaN(date)) return;
      element.title = absolute(date);
      element.textContent = (timeText[element.dataset.format] || relative)(date);
    });
  }
  function tick() {
    var now = new Date();
    var element = document.getElementById("clock");
    if (element) element.textContent = clock(now);
    var zoneElement = document.getElementById("clock-zone");
    if (zoneElement && zone) zoneElement.textContent = zone === "UTC" ? "UTC" : zone.replace(/_/g, " ") + " (" + zoneName(now) + ")";
    renderTimes(document);
  }

  // ---- colours (CSP forbids inline styles in markup; the CSSOM is fine) ----
  // An upstream colour without a tone of ours gets black or white text, whichever contrasts more.
  function luminance(hex) {
    if (hex.length < 7) hex = "#" + hex.slice(1).split("").map(function (c) { return c + c; }).join("");
    return [1, 3, 5].map(function (i) {
      var c = parseInt(hex.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    }).reduce(function (sum, c, i) { return sum + c * [0.2126, 0.7152, 0.0722][i]; }, 0);
  }
  function applyColors(root) {
    (root || document).querySelectorAll("[data-color]:not([data-tone])").forEach(function (element) {
      var color = element.dataset.color;
      if (!/^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/.test(color)) return;
      element.style.setProperty("--badge-color", color);
      element.style.setProperty("--badge-text", (luminance(color) + 0.05) / 0.05 >= 1.05 / (luminance(color) + 0.05) ? "#000" : "#fff");
    });
    (root || document).querySelectorAll("[data-progress]").forEach(function (element) {
      element.style.setProperty("--progress", String(Math.max(0, Math.min(100, parseInt(element.dataset.progress, 10) || 0)) / 100));
    });
  }

  function refresh(root) {
    renderTimes(root);
    applyColors(root);
    finishRows();
    fit();
  }

  // ---- finished builds leave the live panel after a while ----
  function finishRows() {
    document.querySelectorAll("#live-list [data-finished]:not([data-finished-at])").forEach(function (row) {
      row.dataset.finishedAt = String(Date.now());
      setTimeout(function () { if (row.isConnected) row.remove(); }, FINISHED_ROW_MS);
    });
  }

  // ---- the stale banner: only on pages with a socket, never for a revoked or unknown kiosk link ----
  function banner() {
    var reason = "";
    if (state.revoked || !socketElement()) reason = "";
    else if (state.tooMany && !state.open) reason = "Not live: too many screens are open with this link or login; trying again every minute";
    else if (!state.open && !state.connecting) {
      reason = state.since
        ? "Not live since " + clock(state.since) + " " + zoneName(state.since) + ": connection lost, reconnecting…"
        : "Not live: cannot reach the server, retrying…";
    } else if (gaps && gaps.missed) reason = "Not live: missed an update, fetching a fresh copy…";
    else if (state.open && state.deaf) reason = "Not live: the server cannot hear updates (its channel layer is down); waiting for it…";
    else if (state.open && ownDatabaseDown()) {
      reason = "Not current since " + clock(state.health.since) + " " + zoneName(state.health.since) + ": the server cannot reach its database";
    } else if (state.open && state.health && state.health.status !== "ok") reason = "Data may be out of date: " + healthReason(state.health);
    var element = document.getElementById("stale-banner");
    if (!element) return;
    element.hidden = !reason;
    element.querySelector(".stale-reason").textContent = reason;
    body.classList.toggle("is-stale", !!reason);
    var connection = document.getElementById("connection");
    if (connection && socketElement()) {
      connection.dataset.state = state.open ? (reason ? "stale" : "live") : state.connecting ? "connecting" : "down";
      connection.textContent = state.open ? (reason ? "stale" : "live") : state.connecting ? "connecting…" : "not live";
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
    if (health.channel_layer && !health.channel_layer.ok) parts.push("live updates are paused (the server cannot reach Redis)");
    return parts.join("; ") || "data may be out of date";
  }

  // ---- /healthz: staleness of the poller and the upstreams, and the server's version ----
  // A wall is nobody's session: its kiosk key earns it the sync times and short reasons strangers don't get.
  var kioskKey = new URLSearchParams(location.search).get("key");
  var healthUrl = kioskKey ? "/healthz?" + new URLSearchParams({ key: kioskKey }) : "/healthz";

  // Reload once nobody serves this page's version any more. While old and new nodes serve side by side
  // (a rolling deploy behind a round-robin proxy) a reload could land on an old node again; a server
  // that lists no versions is alone, and its own version is the one to be on.
  function deployed(health) {
    var mine = body.dataset.version;
    if (!health.version || !mine || health.version === mine) return false;
    return !health.versions || health.versions.indexOf(mine) < 0;
  }

  function checkHealth() {
    return fetch(healthUrl, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (response.ok) return response.json();
        // 503 with JSON: the server answers but cannot read its own database. That is news for the
        // banner (the socket may still beat), not an answer a reload may land on: callers get null.
        if (response.status === 503) return response.json().then(function (body) { ownOutage(body); return null; }, function () { return null; });
        return null;
      })
      .then(function (health) {
        // A wall asks every 15 s for weeks: the browser's resource-timing buffer would fill with
        // these requests (250 of them, then it stops), and nobody here reads it.
        if (performance.clearResourceTimings) performance.clearResourceTimings();
        if (!health) return null;
        if (deployed(health)) {
          location.reload(); // a deploy: the server answered, so the reload will not land on an error page
          return health;
        }
        state.health = health;
        banner();
        // Degraded (say, a server not yet through its first sync), or a deploy under way: look again
        // soon, so the page says "live" or reloads within seconds, not at the next regular check.
        var deploying = health.versions && health.versions.length > 1;
        if ((health.status !== "ok" || deploying) && !state.recheck) {
          state.recheck = setTimeout(function () { state.recheck = null; checkHealth(); }, DEGRADED_RECHECK_MS);
        }
        return health;
      })
      .catch(function () { return null; });
  }

  function ownDatabaseDown() { return !!state.health && state.health.status === "unavailable"; }
  function ownOutage(body) {
    if (!body || body.status !== "unavailable") return;
    var was = ownDatabaseDown() ? state.health.since : null;
    state.health = { status: "unavailable", since: was || new Date(state.lastData || Date.now()) };
    banner();
    if (!state.recheck) state.recheck = setTimeout(function () { state.recheck = null; checkHealth(); }, DEGRADED_RECHECK_MS);
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
    if (!ownDatabaseDown() && !state.deaf) state.lastData = state.lastMessage; // a heartbeat is not news while the database or the channel layer is away
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

  // ---- no silent gaps (issue 11) ----
  // Every pushed message starts with <!--seq GROUP N-->, numbered per group; a snapshot starts with
  // <!--snapshot GROUP=N ...-->, the numbers it is as new as. A number skipped means the server dropped
  // messages (a full channel): ask for a snapshot at once, and say so in the banner until it comes.
  var gaps = { last: {}, missed: false };
  var SEQ = /^<!--seq (\S+) (\d+)-->/, SNAPSHOT = /^<!--snapshot ([^>]*)-->/;

  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    var message = event.detail.message, match;
    state.deaf = message.indexOf("<!--deaf-->") === 0; // a heartbeat from a server that hears nothing; anything else is news
    if ((match = SNAPSHOT.exec(message))) {
      gaps.last = {};
      match[1].split(" ").forEach(function (pair) {
        var parts = pair.split("=");
        if (parts.length === 2) gaps.last[parts[0]] = parseInt(parts[1], 10);
      });
      gaps.missed = false;
    } else if ((match = SEQ.exec(message))) {
      var group = match[1], number = parseInt(match[2], 10), last = gaps.last[group];
      if (last !== undefined && number <= last) {
        // Older than what the page has (sent by another process, it arrived late): its content is
        // already here, or in the snapshot the gap before it asked for. Never swap it over newer panels.
        event.preventDefault();
        return;
      }
      gaps.last[group] = number;
      if (last !== undefined && number !== last + 1 && !gaps.missed) {
        gaps.missed = true;
        event.detail.socketWrapper.send(JSON.stringify({ want: "snapshot" }));
      }
    }
  });
  document.addEventListener("htmx:wsOpen", function () { gaps.last = {}; gaps.missed = false; });

  // A connection can die without a close: no heartbeat for too long means start again.
  setInterval(function () {
    if (state.open && Date.now() - state.lastMessage > SILENCE_LIMIT_MS) {
      state.open = false;
      banner();
      reconnect();
    }
  }, 5000);

  // ---- the wall: text scale from the screen's settings (rotation and the rest: wall-screen.js, which
  // asks for a fit with a "resize" event) ----
  function setupWall() {
    if (!body.classList.contains("wall-page")) return;
    var scale = parseFloat(body.dataset.textScale || "1");
    if (scale > 0) document.documentElement.style.setProperty("--scale", String(scale));
    window.addEventListener("resize", fit);
    if (document.fonts) document.fonts.ready.then(fit);
  }

  // Rows are counted from the space each panel really has: whatever does not fit whole is hidden and
  // counted in the panel's "+N more", which sits at the panel's foot. The server orders rows worst first.
  function fit() {
    document.querySelectorAll(".wall .fit").forEach(function (list) {
      if (list.offsetParent === null) return; // a rotating panel that is not showing
      var items = Array.prototype.slice.call(list.querySelectorAll(":scope > [data-fit-item]"));
      var more = list.parentElement.querySelector("[data-more]");
      var extra = parseInt(list.dataset.extra || "0", 10) || 0;
      items.forEach(function (item) { item.hidden = false; });
      if (more) { more.textContent = "+" + (items.length + extra) + " " + (list.dataset.moreLabel || "more"); more.hidden = false; }
      var limit = list.clientHeight + 1;
      var hidden = 0;
      if (items.length && items[0].dataset.fitRank !== undefined) {
        hidden = hideByRank(items, limit); // tiles: shown in a stable order, dropped by the server's rank
      } else {
        var cut = items.findIndex(function (item) { return item.offsetTop + item.offsetHeight > limit; });
        hidden = cut < 0 ? 0 : items.length - cut;
        items.slice(cut < 0 ? items.length : cut).forEach(function (item) { item.hidden = true; });
      }
      if (more) {
        more.hidden = hidden + extra === 0;
        more.textContent = "+" + (hidden + extra) + " " + (list.dataset.moreLabel || "more");
      }
    });
  }

  // The least important tile (highest data-fit-rank) goes first, until the rest fit whole.
  function hideByRank(items, limit) {
    var order = items.slice().sort(function (a, b) { return Number(b.dataset.fitRank) - Number(a.dataset.fitRank); });
    function overflows() { return items.some(function (item) { return !item.hidden && item.offsetTop + item.offsetHeight > limit; }); }
    var hidden = 0;
    while (hidden < order.length && overflows()) order[hidden++].hidden = true;
    return hidden;
  }

  // A pushed panel changes in place: tiles keep their elements, so progress bars glide and nothing jumps.
  function morph(from, to) {
    Array.prototype.slice.call(from.attributes).forEach(function (attribute) {
      if (attribute.name !== "style" && attribute.name !== "hidden" && !to.hasAttribute(attribute.name)) from.removeAttribute(attribute.name);
    });
    Array.prototype.slice.call(to.attributes).forEach(function (attribute) {
      if (from.getAttribute(attribute.name) !== attribute.value) from.setAttribute(attribute.name, attribute.value);
    });
    var byId = {};
    Array.prototype.forEach.call(from.children, function (child) { if (child.id) byId[child.id] = child; });
    var wanted = Array.prototype.slice.call(to.childNodes).map(function (fresh, index) {
      var old = fresh.id ? byId[fresh.id] : null;
      var same = from.childNodes[index];
      if (!old && !fresh.id && same && !same.id && same.nodeName === fresh.nodeName) old = same;
      if (!old) return fresh;
      if (old.nodeType === 1) morph(old, fresh);
      else if (old.nodeValue !== fresh.nodeValue) old.nodeValue = fresh.nodeValue;
      return old;
    });
    wanted.forEach(function (node, index) {
      if (from.childNodes[index] !== node) from.insertBefore(node, from.childNodes[index] || null);
    });
    while (from.childNodes.length > wanted.length) from.removeChild(from.lastChild);
  }
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    var fresh = event.detail.fragment && event.detail.fragment.firstElementChild;
    if (!body.classList.contains("wall-page") || !fresh || !target.id || fresh.id !== target.id) return;
    event.detail.shouldSwap = false;
    morph(target, fresh);
  });

  // ---- the dashboard: a "N new events" pill while scrolled down, and a feed that trims itself ----
  var FEED_KEEP = 200;
  var unseen = 0;
  function pill() {
    var button = document.getElementById("new-events");
    if (!button) return;
    button.hidden = unseen === 0;
    button.textContent = "↑ " + unseen + " new event" + (unseen === 1 ? "" : "s");
  }
  function feedScrolledAway() {
    var feed = document.getElementById("feed");
    return !!feed && feed.getBoundingClientRect().top < -40;
  }
  function trimFeed() {
    var feed = document.getElementById("feed");
    if (!feed) return;
    var keep = parseInt(feed.dataset.keep || "", 10) || FEED_KEEP;
    var rows = feed.querySelectorAll(":scope > .event");
    if (rows.length <= keep) return;
    for (var i = rows.length - 1; i >= keep; i--) rows[i].remove();
    // The "Older events" link now starts after the last row still shown, so nothing is skipped.
    var last = rows[keep - 1];
    var params = new URLSearchParams(location.search);
    params.set("before", last.dataset.cursor);
    var more = document.getElementById("feed-more");
    if (!more) {
      more = document.createElement("li");
      more.id = "feed-more";
      more.className = "more";
      more.appendChild(document.createElement("a")).textContent = "Older events";
      feed.insertBefore(more, feed.querySelector(":scope > .empty"));
    }
    var link = more.querySelector("a");
    link.setAttribute("href", "?" + params);
    link.setAttribute("hx-get", "?" + params);
    link.setAttribute("hx-target", "#feed-more");
    link.setAttribute("hx-swap", "outerHTML");
    htmx.process(link);
  }
  // A new row comes in on top: an older copy of it (from a snapshot that already had it) goes.
  function dropDuplicateRows() {
    ["feed", "live-list"].forEach(function (id) {
      var list = document.getElementById(id);
      if (!list) return;
      var seen = {};
      Array.prototype.slice.call(list.children).forEach(function (row) {
        if (!row.id) return;
        if (seen[row.id]) row.remove();
        else seen[row.id] = true;
      });
    });
  }
  document.addEventListener("htmx:wsAfterMessage", dropDuplicateRows);

  function setupDashboard() {
    var column = document.querySelector(".feed-column");
    var button = document.getElementById("new-events");
    if (!column || !button) return;
    new MutationObserver(function (changes) {
      var fresh = 0;
      changes.forEach(function (change) {
        change.addedNodes.forEach(function (node) { if (node.nodeType === 1 && node.classList.contains("is-new")) fresh += 1; });
      });
      if (fresh && feedScrolledAway()) { unseen += fresh; pill(); }
      if (fresh) trimFeed();
    }).observe(column, { childList: true, subtree: true });
    window.addEventListener("scroll", function () { if (unseen && !feedScrolledAway()) { unseen = 0; pill(); } }, { passive: true });
    button.addEventListener("click", function () {
      document.getElementById("feed-heading").scrollIntoView({ behavior: "smooth" });
      unseen = 0;
      pill();
    });
  }

  // ---- the feed's time filters, in the viewer's own zone ----
  // The URL keeps UTC ("2026-11-30T09:00Z"), so a shared link means the same moment everywhere; the
  // inputs show and take the viewer's wall-clock time. Without this script they stay UTC, and say so.
  function localFilterTimes() {
    var form = document.querySelector("form.filters");
    if (!form || zone) return; // a screen's own zone is for walls; datetime-local speaks the browser's
    var pad = function (n) { return String(n).padStart(2, "0"); };
    form.querySelectorAll("input[data-utc]").forEach(function (input) {
      if (!input.value) return;
      var moment = new Date(input.value + "Z");
      if (isNaN(moment)) return;
      input.value = moment.getFullYear() + "-" + pad(moment.getMonth() + 1) + "-" + pad(moment.getDate()) +
        "T" + pad(moment.getHours()) + ":" + pad(moment.getMinutes());
    });
    var own = Intl.DateTimeFormat().resolvedOptions().timeZone || "your time";
    form.querySelectorAll("[data-zone-label]").forEach(function (label) { label.textContent = "(" + own.replace(/_/g, " ") + ")"; });
    form.addEventListener("submit", function (event) {
      var data = new FormData(form);
      form.querySelectorAll("input[data-utc]").forEach(function (input) {
        var moment = input.value ? new Date(input.value) : null; // "YYYY-MM-DDTHH:MM" reads as local time
        if (moment && !isNaN(moment)) data.set(input.name, moment.toISOString().slice(0, 16) + "Z");
      });
      event.preventDefault();
      window.location.assign(form.action + "?" + new URLSearchParams(data).toString());
    });
  }

  // A list that fetches itself again (/pipelines/): an answer without the list (the login page, once the
  // session is gone) must not swap it for nothing. The page reloads instead and shows what that answer said.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var wanted = event.detail.elt && event.detail.elt.getAttribute("hx-select");
    if (!wanted || !event.detail.xhr) return;
    if (event.detail.xhr.status !== 200 || event.detail.xhr.responseText.indexOf('id="' + wanted.slice(1) + '"') < 0) {
      event.detail.shouldSwap = false;
      if (event.detail.xhr.status === 200) location.reload();
    }
  });
  document.addEventListener("htmx:afterSettle", function (event) { refresh(event.target); });
  document.addEventListener("htmx:wsAfterMessage", function () { refresh(document); });
  document.addEventListener("DOMContentLoaded", function () {
    refresh(document);
    setupWall();
    setupDashboard();
    localFilterTimes();
    banner();
    checkHealth();
    tick();
    setInterval(tick, 1000);
    setInterval(checkHealth, HEALTH_EVERY_MS);
    setTimeout(function () { state.connecting = false; banner(); }, 8000); // a first connect that never comes is news
  });
})();
