// "Copy to clipboard": a button with data-copy="<id>" copies the text of the element with
// that id, and says so in its data-copied words (no inline script: the CSP allows none).
// The clipboard API exists only in a secure context (HTTPS, or the loopback): served over
// plain HTTP, or when the browser refuses, the text is selected instead, for Ctrl+C.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  function select(source) {
    var range = document.createRange();
    range.selectNodeContents(source);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.dataset.copy);
      if (!source) {
        return;
      }
      if (!navigator.clipboard) {
        select(source);
        return;
      }
      navigator.clipboard.writeText(source.textContent.trim()).then(
        function () {
          button.textContent = button.dataset.copied;
        },
        function () {
          select(source);
        }
      );
    });
  });
});
