// augur's pages: live refresh of <main> over Server-Sent Events (paused in
// hidden tabs, keeping open <details> and scroll), UTC/local time toggle.
// No inline scripts: the Content-Security-Policy allows only this file.
(function () {
  "use strict";
  var root = document.documentElement;
  window.__augurErrors = [];
  window.addEventListener("error", function (e) { window.__augurErrors.push(String(e.message)); });

  // Times: UTC by default; the choice is kept in localStorage.
  function showTimes() {
    var local = localStorage.getItem("augur.tz") === "local";
    var btn = document.getElementById("tz");
    if (btn) btn.textContent = local ? "local" : "UTC";
    document.querySelectorAll("time[data-t]").forEach(function (el) {
      var d = new Date(Number(el.getAttribute("data-t")));
      if (local) {
        var p = function (n) { return String(n).padStart(2, "0"); };
        el.textContent = d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " +
          p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
      } else {
        el.textContent = d.toISOString().slice(0, 19).replace("T", " ") + "Z";
      }
    });
  }

  var url = document.body.getAttribute("data-live-url");
  var source = null;
  var fetching = false;

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
      if (t) document.title = decodeURIComponent(t.replace(/\+/g, " "));
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
    if (!url || source) return;
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

  document.addEventListener("visibilitychange", function () {
    if (!url || root.getAttribute("data-live") === "final") return;
    if (document.hidden) { close(); setLive("paused"); } else { connect(); refresh(); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var btn = document.getElementById("tz");
    if (btn) btn.addEventListener("click", function () {
      localStorage.setItem("augur.tz", localStorage.getItem("augur.tz") === "local" ? "utc" : "local");
      showTimes();
    });
    showTimes();
    if (url) connect();
  });
})();
