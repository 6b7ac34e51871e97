// augur's pages: live refresh of <main> over Server-Sent Events (paused in
// hidden tabs and by the pause button, kept as ?live=0; open <details> and
// scroll survive a refresh), UTC/local time toggle, relative times, theme.
// No inline scripts: the Content-Security-Policy allows only this file.
(function () {
  "use strict";
  var root = document.documentElement;
  window.__augurErrors = [];
  window.addEventListener("error", function (e) { window.__augurErrors.push(String(e.message)); });

  // Theme first, before the body paints: auto (the browser's), light, dark.
  var themes = ["auto", "light", "dark"];
  function applyTheme() {
    var t = localStorage.getItem("augur.theme") || "auto";
    if (t === "auto") root.removeAttribute("data-theme"); else root.setAttribute("data-theme", t);
    var btn = document.getElementById("theme");
    if (btn) btn.textContent = t;
  }
  applyTheme();

  // Times: UTC by default; the choice is kept in localStorage.
  function pad(n) { return String(n).padStart(2, "0"); }
  function showTimes() {
    var local = localStorage.getItem("augur.tz") === "local";
    var btn = document.getElementById("tz");
    if (btn) btn.textContent = local ? "local" : "UTC";
    document.querySelectorAll("time[data-t]").forEach(function (el) {
      var d = new Date(Number(el.getAttribute("data-t")));
      if (local) {
        el.textContent = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
          pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
      } else {
        el.textContent = d.toISOString().slice(0, 19).replace("T", " ") + "Z";
      }
    });
    showAgo();
  }
  // Relative times ("3m ago"), the same words the server writes.
  function showAgo() {
    var now = Date.now();
    document.querySelectorAll("time[data-ago]").forEach(function (el) {
      var s = Math.trunc((now - Number(el.getAttribute("data-ago"))) / 1000);
      var a = Math.abs(s), n, u;
      if (a < 60) { n = a; u = "s"; } else if (a < 3600) { n = Math.floor(a / 60); u = "m"; }
      else if (a < 86400) { n = Math.floor(a / 3600); u = "h"; } else { n = Math.floor(a / 86400); u = "d"; }
      el.textContent = s < 0 ? "in " + n + u : n + u + " ago";
    });
  }

  var url = null;
  var source = null;
  var fetching = false;
  var paused = new URL(window.location.href).searchParams.get("live") === "0";

  function setLive(s) { root.setAttribute("data-live", s); }

  function refresh() {
    if (fetching) return;
    // Never swap while someone is selecting text to copy.
    var sel = window.getSelection();
    var main = document.getElementById("main");
    if (sel && !sel.isCollapsed && main.contains(sel.anchorNode)) { setTimeout(refresh, 1000); return; }
    fetching = true;
    var here = new URL(window.location.href);
    here.searchParams.set("fragment", "main");
    fetch(here.toString(), { cache: "no-store" }).then(function (r) {
      var t = r.headers.get("x-augur-title");
      if (t) {
        t = decodeURIComponent(t.replace(/\+/g, " "));
        // The state leads the title: announce it when it changes.
        var was = document.title.split(" · ")[0], now = t.split(" · ")[0];
        if (was.split(" ")[0] !== now.split(" ")[0]) {
          var a = document.getElementById("announce");
          if (a) a.textContent = now;
        }
        document.title = t;
      }
      return r.text();
    }).then(function (html) {
      var open = {};
      main.querySelectorAll("details[id]").forEach(function (d) { open[d.id] = d.open; });
      var y = window.scrollY;
      var tpl = document.createElement("template");
      tpl.innerHTML = html;
      main.replaceChildren(tpl.content);
      main.querySelectorAll("details[id]").forEach(function (d) { if (d.id in open) d.open = open[d.id]; });
      window.scrollTo(0, y);
      showTimes();
      window.__augurRefreshedAt = Date.now();
    }).catch(function (e) { window.__augurErrors.push("refresh: " + e); })
      .finally(function () { fetching = false; });
  }

  function connect() {
    if (!url || source || paused) return;
    source = new EventSource(url);
    source.addEventListener("open", function () { setLive("connected"); });
    source.addEventListener("hello", function () { setLive("connected"); });
    source.addEventListener("changed", function () { setLive("connected"); refresh(); });
    source.addEventListener("end", function () { close(); setLive("final"); refresh(); });
    source.addEventListener("error", function () {
      if (source && source.readyState === EventSource.CLOSED) { source = null; setLive("final"); }
      else setLive("reconnecting");
    });
  }
  function close() { if (source) { source.close(); source = null; } }

  function togglePause() {
    if (root.getAttribute("data-live") === "final") return;
    paused = !paused;
    var here = new URL(window.location.href);
    if (paused) { here.searchParams.set("live", "0"); close(); setLive("paused"); }
    else { here.searchParams.delete("live"); connect(); refresh(); }
    history.replaceState(null, "", here.toString());
  }

  document.addEventListener("visibilitychange", function () {
    if (!url || paused || root.getAttribute("data-live") === "final") return;
    if (document.hidden) { close(); setLive("paused"); } else { connect(); refresh(); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    url = document.body.getAttribute("data-live-url");
    var tz = document.getElementById("tz");
    if (tz) tz.addEventListener("click", function () {
      localStorage.setItem("augur.tz", localStorage.getItem("augur.tz") === "local" ? "utc" : "local");
      showTimes();
    });
    var th = document.getElementById("theme");
    if (th) th.addEventListener("click", function () {
      var t = localStorage.getItem("augur.theme") || "auto";
      localStorage.setItem("augur.theme", themes[(themes.indexOf(t) + 1) % themes.length]);
      applyTheme();
    });
    var pb = document.getElementById("pause");
    if (pb) pb.addEventListener("click", togglePause);
    applyTheme();
    showTimes();
    setInterval(showAgo, 10000);
    if (url && paused) setLive("paused");
    else if (url) connect();
  });
})();
