// Manifest upload with a progress bar: bytes sent first, then "checking" while the server
// announces the parcels; the per-line report comes back as HTML and replaces the old one.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  var box = document.getElementById("upload-progress");
  var bar = document.getElementById("progress-bar");
  var label = document.getElementById("progress-label");
  var report = document.getElementById("upload-report");
  var text = JSON.parse(document.getElementById("upload-text").textContent);

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    box.hidden = false; bar.value = 0; label.textContent = text.sending;
    form.querySelector("button").disabled = true;
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total);
    };
    xhr.upload.onload = function () {
      bar.removeAttribute("value");  // indeterminate while the server works
      label.textContent = text.checking;
    };
    xhr.onload = function () {
      form.querySelector("button").disabled = false;
      box.hidden = true;
      try { report.innerHTML = JSON.parse(xhr.responseText).html; }
      catch (e) { report.textContent = text.failed; }
      report.focus();
    };
    xhr.onerror = function () {
      form.querySelector("button").disabled = false;
      label.textContent = text.failed;
    };
    xhr.send(new FormData(form));
  });
})();
