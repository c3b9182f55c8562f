// A wall that behaves like a teammate, from its screen's settings on the server (the body's data-*):
// - rotation between panels, each for its dwell time;
// - failures take the screen: a new failed build or critical incident brings its panel up at once, and a
//   rotating wall stays on red panels while anything is red (`data-holding` on .wall-panels), then rotates on;
// - quiet hours: dark but for a small clock (`data-asleep` on <body>), woken by a critical incident;
// - an opt-in chime for a new failure or critical incident, made here with WebAudio: one a minute at most,
//   never in quiet hours;
// - the admin's signals: show the screen's name in big type for ten seconds, play the test chime.
// It runs after live.js, which swaps pushed panels in and asks for a fit on "resize".
(function () {
  "use strict";

  var body = document.body;
  if (!body.classList.contains("wall-page") || !document.querySelector(".wall-panels")) return;

  var CHIME_GAP_MS = 60000;
  var IDENTIFY_MS = 10000;
  var RED = ".panel .tile--failed[id], .panel .wall-card[data-tone='bad'][id]";

  var container = document.querySelector(".wall-panels");
  var slots = Array.prototype.slice.call(document.querySelectorAll("[data-panel-slot]"));
  var rotating = body.dataset.rotate === "true" && slots.length >= 2;
  var jumping = body.dataset.jumpToFailures !== "false";
  var index = 0, timer = null, knownRed = null, lastChime = 0, audio = null;

  function fit() { window.dispatchEvent(new Event("resize")); }

  // ---- rotation, and holding on red ----
  function redIds() {
    return Array.prototype.map.call(document.querySelectorAll(RED), function (element) { return element.id; });
  }
  function slotOf(id) {
    var element = document.getElementById(id);
    var slot = element && element.closest("[data-panel-slot]");
    return slot ? slots.indexOf(slot) : -1;
  }
  function redSlots() {
    var found = [];
    redIds().forEach(function (id) {
      var at = slotOf(id);
      if (at >= 0 && found.indexOf(at) < 0) found.push(at);
    });
    return found.sort();
  }
  function show(at) {
    index = at;
    slots.forEach(function (slot, position) { slot.hidden = position !== index; });
    fit();
  }
  function holding() {
    var red = jumping ? redSlots() : [];
    if (red.length && red.indexOf(index) >= 0) container.dataset.holding = slots[index].dataset.panelSlot;
    else delete container.dataset.holding;
    return red;
  }
  function schedule() {
    clearTimeout(timer);
    var dwell = parseInt(slots[index].dataset.dwell || "20", 10);
    timer = setTimeout(next, Math.max(3, dwell) * 1000);
  }
  function next() {
    var red = jumping ? redSlots() : [];
    var choices = red.length ? red : slots.map(function (_, position) { return position; });
    show(choices[(choices.indexOf(index) + 1) % choices.length]); // a held single red panel shows again
    holding();
    schedule();
  }

  // After every pushed message (and once at load): anything newly red takes the screen now.
  function afterChange() {
    var ids = redIds();
    var fresh = knownRed === null ? [] : ids.filter(function (id) { return knownRed.indexOf(id) < 0; });
    knownRed = ids;
    if (fresh.length) chime(false);
    sleepOrWake();
    if (!rotating) return;
    var red = jumping ? redSlots() : [];
    var wanted = fresh.length && slotOf(fresh[0]) >= 0 ? slotOf(fresh[0]) : red.indexOf(index) < 0 ? red[0] : index;
    if (jumping && wanted !== undefined && wanted !== index) {
      show(wanted);
      schedule();
    }
    holding();
  }

  // ---- quiet hours ----
  var clockFormat = null;
  function zoneTime(date) {
    if (!clockFormat) {
      var options = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
      try { clockFormat = new Intl.DateTimeFormat("en-GB", Object.assign({ timeZone: body.dataset.timeZone || undefined }, options)); }
      catch (error) { clockFormat = new Intl.DateTimeFormat("en-GB", options); }
    }
    return clockFormat.format(date);
  }
  function inQuietHours() {
    var from = body.dataset.quietFrom, until = body.dataset.quietUntil;
    if (!from || !until || from === until) return false;
    var now = zoneTime(new Date());
    return from < until ? now >= from && now < until : now >= from || now < until; // "22:00" to "07:00" crosses midnight
  }
  function criticalOpen() { return !!document.querySelector(".wall-card[data-tone='bad']"); }  // a critical incident's card
  function sleepOrWake() {
    var asleep = inQuietHours() && !criticalOpen();
    if (asleep !== (body.dataset.asleep !== undefined)) {
      if (asleep) body.dataset.asleep = "";
      else { delete body.dataset.asleep; fit(); }
    }
    var clock = document.querySelector(".sleep-clock");
    if (clock && asleep) clock.textContent = zoneTime(new Date());
  }

  // ---- the chime: two soft sine notes, made here ----
  function chime(test) {
    if (!test && (body.dataset.chime !== "true" || inQuietHours() || Date.now() - lastChime < CHIME_GAP_MS)) return;
    if (!test) lastChime = Date.now();
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    try {
      audio = audio || new Context();
      if (audio.resume) audio.resume();
      [880, 1318.5].forEach(function (frequency, note) {
        var oscillator = audio.createOscillator(), gain = audio.createGain();
        var start = audio.currentTime + note * 0.18;
        oscillator.type = "sine";
        oscillator.frequency.value = frequency;
        gain.gain.setValueAtTime(0.0001, start);
        gain.gain.exponentialRampToValueAtTime(0.25, start + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.6);
        oscillator.connect(gain);
        gain.connect(audio.destination);
        oscillator.start(start);
        oscillator.stop(start + 0.65);
      });
    } catch (error) {
      console.warn("chime failed", error); // a browser that blocks audio without a click: see the README
    }
  }

  // ---- the admin's signals ----
  var seen = { identify: "", chime: "" };
  function signals() {
    var name = document.getElementById("screen-identify");
    if (name && name.dataset.at && name.dataset.at !== seen.identify) {
      seen.identify = name.dataset.at;
      name.hidden = false;
      setTimeout(function () { if (name.isConnected && name.dataset.at === seen.identify) name.hidden = true; }, IDENTIFY_MS);
    }
    var bell = document.getElementById("screen-chime");
    if (bell && bell.dataset.at && bell.dataset.at !== seen.chime) {
      seen.chime = bell.dataset.at;
      chime(true);
    }
  }

  document.addEventListener("htmx:wsAfterMessage", function () {
    signals();
    afterChange();
  });
  document.addEventListener("DOMContentLoaded", function () {
    if (rotating) {
      show(0);
      schedule();
    }
    afterChange();
    setInterval(sleepOrWake, 1000);
  });
})();
