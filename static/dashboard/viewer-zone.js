// Tells the server the viewer's time zone, for the admin (dashboard/web/viewer_zone.py renders its times in it).
// An admin page rendered in another zone is shown again once, in the right one.
(function () {
  "use strict";
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!zone) return;
  var had = (document.cookie.match(/(?:^|; )pulseboard_tz=([^;]*)/) || [])[1];
  if (had && decodeURIComponent(had) === zone) return;
  document.cookie = "pulseboard_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Lax";
  var saved = (document.cookie.match(/(?:^|; )pulseboard_tz=([^;]*)/) || [])[1];
  var admin = document.body.dataset.adminUtcOffset !== undefined; // the admin's pages carry the zone they were rendered in
  if (admin && saved && decodeURIComponent(saved) === zone && !sessionStorage.getItem("pulseboard-zone-reloaded")) {
    sessionStorage.setItem("pulseboard-zone-reloaded", "1"); // once: never a loop, whatever the browser does with cookies
    location.reload();
  }
})();
