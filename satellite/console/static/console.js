// The console's own script (no inline script: the CSP allows none). Pages work without
// it; it only adds conveniences.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // A form's first field with an error gets the focus.
  var field = document.querySelector("form [autofocus]");
  if (field) {
    field.focus();
  }
});
