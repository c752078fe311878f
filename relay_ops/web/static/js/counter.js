// Counter screens: a beep per answer (different for a refusal) and the scan field kept focused.
(function () {
  "use strict";
  var audio = null;
  var TONES = {
    ok: [[880, 0.12, "sine"]],
    info: [[660, 0.09, "sine"], [660, 0.09, "sine"]],
    confirm: [[520, 0.12, "triangle"], [780, 0.16, "triangle"]],
    error: [[196, 0.45, "square"]]
  };
  function beep(tone) {
    document.documentElement.dataset.lastSound = tone;
    var notes = TONES[tone];
    if (!notes) return;
    try {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return;
      audio = audio || new Ctx();
      var t = audio.currentTime;
      notes.forEach(function (n) {
        var osc = audio.createOscillator(), gain = audio.createGain();
        osc.type = n[2]; osc.frequency.value = n[0];
        gain.gain.setValueAtTime(0.25, t); gain.gain.exponentialRampToValueAtTime(0.001, t + n[1]);
        osc.connect(gain); gain.connect(audio.destination);
        osc.start(t); osc.stop(t + n[1]);
        t += n[1] + 0.05;
      });
    } catch (e) { /* no sound is better than a broken counter */ }
  }
  window.RelayOps = { beep: beep };

  var field = document.querySelector("[data-scan-field]");
  if (field) {
    var interactive = "a, button, input, select, textarea, summary, [tabindex]";
    // Back to the scan field whenever focus would otherwise fall on nothing useful.
    field.addEventListener("blur", function () {
      setTimeout(function () {
        var el = document.activeElement;
        if (!el || el === document.body || !el.matches(interactive)) field.focus();
      }, 0);
    });
    // A scanner typing while focus is on a link or button still lands in the field.
    document.addEventListener("keydown", function (ev) {
      var el = document.activeElement;
      if (el === field || ev.ctrlKey || ev.altKey || ev.metaKey || ev.key.length !== 1) return;
      if (el && el.matches("input, select, textarea")) return;
      field.focus();
    }, true);
    document.addEventListener("click", function (ev) {
      if (!ev.target.closest(interactive)) field.focus();
    });
    // The autofocus attribute is ignored when the address names an anchor (the link from the
    // pickup screen to the waiting parcels does): the field still takes the scanner's input,
    // and the page stays scrolled where the link pointed.
    if (!document.activeElement || document.activeElement === document.body) {
      field.focus({ preventScroll: true });
    }
  }
  var answered = document.querySelector("[data-tone]");
  if (answered) beep(answered.dataset.tone);
})();
