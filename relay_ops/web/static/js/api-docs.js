// The API's browsable document: a file, not an inline script, so the page's
// Content-Security-Policy can forbid inline code.
(function () {
  "use strict";
  var ui = document.getElementById("ui");
  window.SwaggerUIBundle({ url: ui.dataset.spec, dom_id: "#ui" });
})();
