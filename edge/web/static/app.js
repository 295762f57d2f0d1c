// The lane page's live updates: an SSE stream says "something changed", the page
// fetches the server-rendered panel and swaps it in, keeping a reason being typed.
(function () {
  "use strict";
  // The approval queue reloads when a request comes or goes, unless a reason is being typed.
  var queue = document.getElementById("approvals");
  if (queue && window.EventSource) {
    var feed = new EventSource("/approvals/events");
    feed.addEventListener("update", function () {
      var typing = Array.prototype.some.call(queue.querySelectorAll("textarea"), function (a) { return a.value; });
      if (!typing) { window.location.replace("/approvals"); }
    });
  }
})();

(function () {
  "use strict";
  var panel = document.getElementById("panel");
  if (!panel || !window.EventSource) { return; }
  var lane = encodeURIComponent(panel.dataset.lane);
  var live = document.getElementById("live");
  var busy = false;
  var again = false;

  function setLive(ok) {
    if (!live) { return; }
    live.textContent = ok ? live.dataset.live : live.dataset.reconnecting;
    live.className = ok ? "live on" : "live off";
  }

  function swap(html) {
    var old = panel.querySelector("[data-session]");
    var oldId = old ? old.dataset.session : "";
    var area = panel.querySelector("textarea[name=reason]");
    var typed = area ? area.value : "";
    var focused = area !== null && document.activeElement === area;
    panel.innerHTML = html;
    var now = panel.querySelector("[data-session]");
    if (typed && now && now.dataset.session === oldId) {
      var next = panel.querySelector("textarea[name=reason]");
      if (next) {
        next.value = typed;
        if (focused) { next.focus(); }
      }
    }
    panel.dataset.updated = String(Date.now());
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch("/lanes/" + lane + "/panel", { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) { if (html !== null) { swap(html); } })
      .catch(function () { setLive(false); })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  function connect() {
    var source = new EventSource("/lanes/" + lane + "/events");
    source.addEventListener("hello", function () { setLive(true); refresh(); });
    source.addEventListener("update", refresh);
    source.addEventListener("expired", function () { source.close(); window.location.reload(); });
    source.onerror = function () {
      setLive(false);
      if (source.readyState === EventSource.CLOSED) {
        // Refused (e.g. the login expired): the panel request then reloads to the login page.
        window.setTimeout(function () { refresh(); connect(); }, 3000);
      }
    };
  }
  connect();
})();
