// Scan station: every scan is queued and sent in order, one at a time, so fast scanning loses
// nothing; a network failure retries the same scan (check-in is idempotent per number).
(function () {
  "use strict";
  var form = document.getElementById("scan-form");
  var field = document.getElementById("scan-field");
  var status = document.getElementById("queue-status");
  var result = document.getElementById("result");
  var log = document.getElementById("log");
  var pending = document.getElementById("pending");
  var pendingSection = document.getElementById("pending-section");
  var text = JSON.parse(document.getElementById("scan-text").textContent);
  var csrf = form.querySelector("input[name=csrf_token]").value;
  // The queue survives a reload or a new sign-in: scans waiting when the session ended are
  // sent when the station opens again.
  var storeKey = "relayops-scan-queue:" + form.action;
  var queue = restore(), busy = false;

  function restore() {
    try { return JSON.parse(window.localStorage.getItem(storeKey) || "[]"); }
    catch (e) { return []; }
  }
  function save() {
    try { window.localStorage.setItem(storeKey, JSON.stringify(queue)); } catch (e) { /* private mode */ }
  }

  showQueue(); pump();

  function showQueue() {
    status.textContent = queue.length ? text.queued.replace("{n}", queue.length) : "";
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var number = field.value.trim();
    field.value = "";
    field.focus();
    if (!number) return;
    queue.push({ number: number, accept: false });
    save(); showQueue(); pump();
  });

  function pump() {
    if (busy || !queue.length) return;
    busy = true;
    var item = queue[0];
    var body = new FormData();
    body.append("tracking_number", item.number);
    if (item.accept) body.append("accept_unannounced", "1");
    if (item.carrier) body.append("carrier", item.carrier);
    fetch(form.action, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrf }
    }).then(function (response) {
      if (response.status === 401 || response.status === 400) {
        // Signed out (or the form's token expired): keep the queue, ask for a new sign-in.
        status.innerHTML = "";
        var a = document.createElement("a");
        a.href = text.signin_url; a.textContent = text.signed_out;
        status.appendChild(a);
        window.RelayOps.beep("error");
        return null;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    }).then(function (answer) {
      if (answer === null) return;  // stays busy: nothing more is sent until a new sign-in
      queue.shift(); save();
      show(answer, item);
      busy = false; showQueue(); pump();
    }).catch(function () {
      status.textContent = text.offline;
      setTimeout(function () { busy = false; pump(); }, 2000);
    });
  }

  function line(cls, content) {
    var p = document.createElement("p");
    p.className = cls; p.id = cls; p.textContent = content;
    return p;
  }

  function show(answer, item) {
    result.className = "result tone-" + answer.tone;
    result.replaceChildren(line("result-title", text.icons[answer.tone] + " " + answer.title));
    if (answer.location) {
      var loc = line("result-location", answer.location);
      loc.setAttribute("aria-label", text.shelf + " " + answer.location);
      result.appendChild(loc);
    }
    result.appendChild(line("result-message", answer.message));
    result.appendChild(line("result-number", answer.tracking_number));
    if (answer.label_url) {
      var a = document.createElement("a");
      a.href = answer.label_url; a.target = "_blank"; a.textContent = text.label;
      var p = document.createElement("p"); p.appendChild(a); result.appendChild(p);
    }
    if (answer.choices && answer.choices.length) result.appendChild(choices(answer));
    var li = document.createElement("li");
    li.className = "tone-" + answer.tone;
    li.textContent = text.icons[answer.tone] + " " + answer.tracking_number + " — " +
      (answer.location ? answer.location + " — " : "") + answer.title;
    log.prepend(li);
    if (answer.tone === "confirm") askToAccept(answer);
    window.RelayOps.beep(answer.tone);
    if (!pending.contains(document.activeElement)) field.focus();
  }

  // Two carriers' parcels here carry the number: one button per carrier, and the choice
  // goes through the scan queue like any scan.
  function choices(answer) {
    var p = document.createElement("div");
    p.className = "choices"; p.id = "result-choices";
    answer.choices.forEach(function (code) {
      var button = document.createElement("button");
      button.type = "button"; button.className = "primary"; button.textContent = code;
      button.dataset.carrier = code;
      button.addEventListener("click", function () {
        queue.push({ number: answer.tracking_number, accept: false, carrier: code });
        save(); p.remove(); field.focus(); showQueue(); pump();
      });
      p.appendChild(button);
    });
    return p;
  }

  // The "not announced" list is kept by the server until each parcel is decided: the page
  // starts from the list it was served with and adds what this session scans.
  function askToAccept(answer) {
    for (var i = 0; i < pending.children.length; i++) {
      if (pending.children[i].dataset.number === answer.tracking_number) return;
    }
    var li = document.getElementById("pending-item").content.firstElementChild.cloneNode(true);
    li.dataset.number = answer.tracking_number;
    li.querySelector(".number").textContent = answer.tracking_number;
    li.querySelectorAll("input[name=tracking_number]").forEach(function (input) {
      input.value = answer.tracking_number;
    });
    pending.appendChild(li);
    pendingSection.hidden = false;
  }

  // Accept goes through the scan queue (in order, retried); Set aside tells the server. Both
  // buttons are forms, so without script they post and the page comes back.
  pending.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var li = ev.target.closest("li");
    var number = li.dataset.number;
    // Which form was sent tells the decision (older browsers have no ev.submitter).
    if (ev.target.querySelector("input[name=accept_unannounced]")) {
      queue.push({ number: number, accept: true });
      save();
    } else {
      fetch(ev.target.action, {
        method: "POST", body: new FormData(ev.target), credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRF-Token": csrf }
      }).catch(function () { /* still on the server's list: it comes back on reload */ });
    }
    li.remove();
    pendingSection.hidden = !pending.children.length;
    field.focus();
    showQueue(); pump();
  });
})();
