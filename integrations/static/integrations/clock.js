/* Tells the server the browser's time zone (a cookie read by integrations/web/clock.py), so that every page shows
 * times on the user's clock. Loaded on every page, the sign-in page included, so the first page after signing in
 * already knows it. Without it (or with cookies off) the pages use the profile's zone, else the site's, and say so. */
(function () {
  "use strict";
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (!zone || zone.length > 64 || !/^[A-Za-z0-9_+\/-]+$/.test(zone)) return;  // an IANA name: cookie-safe as it is
    var value = zone;
    if (document.cookie.split("; ").indexOf("skyport_tz=" + value) !== -1) return;
    document.cookie = "skyport_tz=" + value + "; path=/; max-age=31536000; samesite=lax" +
      (location.protocol === "https:" ? "; secure" : "");
  } catch (e) { /* no zone to tell: the page names the one it uses */ }
})();
