// Wall tiles glide to their new place instead of jumping (a FLIP animation). A tile moves when a pipeline
// changes bucket (starts failing, stalls, is fixed) or when the wall's fit shows or hides another tile;
// animated by transform, the move is not a layout shift, so the wall stays calm to watch for weeks.
(function () {
  "use strict";
  if (!document.body.classList.contains("wall-page")) return;
  var reduced = window.matchMedia("(prefers-reduced-motion: reduce)");
  var places = {};
  var shape = "";
  var calmFrom = Date.now() + 2000; // the first snapshot and the fonts arrive: nothing to glide from yet

  function visibleTiles() {
    return Array.prototype.filter.call(document.querySelectorAll(".wall .tiles > [data-pipeline]"), function (tile) {
      return !tile.hidden && tile.id;
    });
  }

  // offsetLeft/offsetTop are layout positions: a transform under way does not change them.
  // A panel that changed size (a resize, the fonts, the text scale, a rotation) moves every tile at once:
  // that is a new layout, not a change to watch, so tiles take their places without gliding.
  function settle() {
    var list = document.querySelector(".wall .tiles");
    var size = list ? [list.clientWidth, list.clientHeight, getComputedStyle(list).fontSize].join("x") : "";
    var animate = size === shape && Date.now() >= calmFrom;
    shape = size;
    var now = {};
    visibleTiles().forEach(function (tile) {
      var place = { left: tile.offsetLeft, top: tile.offsetTop };
      now[tile.id] = place;
      var before = places[tile.id];
      if (!before || !animate || reduced.matches || tile.dataset.gliding) return;
      var dx = before.left - place.left, dy = before.top - place.top;
      if (!dx && !dy) return;
      tile.dataset.gliding = "true";
      tile.style.transition = "none";
      tile.style.transform = "translate(" + dx + "px, " + dy + "px)";
      requestAnimationFrame(function () {
        requestAnimationFrame(function () {
          tile.style.transition = "transform .8s ease-in-out";
          tile.style.transform = "";
          setTimeout(function () { delete tile.dataset.gliding; tile.style.transition = ""; }, 900);
        });
      });
    });
    places = now;
  }

  // Observers run after the swap and live.js's fit have finished, before the next frame is painted.
  new MutationObserver(function (mutations) {
    var moved = mutations.some(function (mutation) {
      return mutation.target.closest && mutation.target.closest("#wall-builds") && !(mutation.attributeName === "data-gliding" || mutation.attributeName === "style");
    });
    if (moved) settle();
  }).observe(document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ["hidden", "class", "id", "data-pipeline-state"] });
  window.addEventListener("resize", function () { setTimeout(settle, 0); });
  setTimeout(settle, 2100);
  settle();
})();
