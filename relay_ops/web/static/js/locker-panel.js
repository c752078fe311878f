// Locker panel: every action posts with fetch and the panel polls the locker's state (the
// doors, the screen), so what shows is what the simulated locker did. Works without script too.
(function () {
  "use strict";
  var root = document.getElementById("locker-panel");
  var live = document.getElementById("locker-live");
  var screen = document.getElementById("locker-screen");
  var link = document.getElementById("locker-link");
  var status = document.getElementById("panel-status");
  var pin = document.getElementById("pin-field");
  var qr = document.getElementById("qr-field");
  var csrf = document.getElementById("panel-csrf").value;
  var text = JSON.parse(document.getElementById("panel-text").textContent);
  var lastHtml = live.innerHTML, lastScreen = null, lastLink = link.innerHTML;

  function say(ok, message) {
    status.hidden = false;
    status.className = "flash " + (ok ? "flash-ok" : "flash-error");
    status.textContent = (ok ? "✔ " : "✖ ") + message;
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.hasAttribute("data-panel")) return;
    ev.preventDefault();
    var body = new FormData(form);
    if (ev.submitter && ev.submitter.name) body.append(ev.submitter.name, ev.submitter.value);
    fetch(form.action, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrf }
    }).then(function (response) { return response.json(); })
      .then(function (answer) {
        say(Boolean(answer.ok), answer.message || text.offline);
        if (answer.ok) form.querySelectorAll("input:not([type=hidden]), textarea").forEach(
          function (field) { field.value = ""; });
        refresh();
      })
      .catch(function () { say(false, text.offline); });
  });

  root.addEventListener("click", function (ev) {
    var key = ev.target.getAttribute && ev.target.getAttribute("data-key");
    if (!key) return;
    pin.value = key === "back" ? pin.value.slice(0, -1) : pin.value + key;
  });

  live.addEventListener("click", function (ev) {
    var token = ev.target.getAttribute && ev.target.getAttribute("data-qr");
    if (!token) return;
    qr.value = token;
    qr.focus();
  });

  function showScreen(lines) {
    var key = JSON.stringify(lines);
    if (key === lastScreen) return;
    lastScreen = key;
    screen.innerHTML = "";
    (lines.length ? lines : [text.idle]).forEach(function (line) {
      var li = document.createElement("li");
      li.textContent = line;
      screen.appendChild(li);
    });
  }

  function showLive(html) {
    if (html === lastHtml) return;
    // Keep the keyboard focus on the same control when the doors are redrawn.
    var focused = document.activeElement && live.contains(document.activeElement)
      ? document.activeElement.id : null;
    live.innerHTML = html;
    lastHtml = html;
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
  }

  function refresh() {
    return fetch(root.dataset.stateUrl, {
      credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (response) { return response.json(); })
      .then(function (state) {
        showScreen(state.screen);
        showLive(state.html);
        var badge = state.link_html;
        if (badge && badge !== lastLink) { link.innerHTML = badge; lastLink = badge; }
        root.dataset.online = state.online ? "yes" : "no";
      })
      .catch(function () { /* the next poll tries again */ });
  }

  window.setInterval(refresh, 800);
})();
