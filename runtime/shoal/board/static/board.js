// Live pages (shoal.board.live): every data-refresh-ms, fetch this page's <main> again and
// swap it in. The server renders and escapes it; nothing here builds HTML from data.
(function () {
  "use strict";
  var period = Number(document.body.dataset.refreshMs) || 2000;
  var main = document.getElementById("main");
  function busy() {
    var active = document.activeElement;
    return document.hidden || (active && main.contains(active) && active.form);
  }
  function refresh() {
    if (busy() || document.querySelector("form[method=post]")) return; // never under a confirmation
    fetch(window.location.href, { headers: { "X-Shoal-Fragment": "main" }, credentials: "same-origin" })
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) {
        if (html === null || busy()) return;
        var fresh = new DOMParser().parseFromString("<main>" + html + "</main>", "text/html");
        main.replaceChildren.apply(main, Array.from(fresh.body.firstChild.childNodes));
        main.dataset.refreshed = String(Date.now());
      })
      .catch(function () {});
  }
  window.setInterval(refresh, period);
})();
