// The shelf label's Print button (a file: the Content-Security-Policy forbids inline handlers).
(function () {
  "use strict";
  document.getElementById("print-label").addEventListener("click", function () {
    window.print();
  });
})();
