// Recovery codes: "Copy the codes" puts them on the clipboard, one a line. The button stays hidden
// where there is no script or no clipboard; the download link works without either.
(function () {
  "use strict";
  var button = document.querySelector("[data-copy-codes]");
  if (!button || !navigator.clipboard) { return; }
  var list = document.getElementById(button.getAttribute("data-copy-codes"));
  var status = document.getElementById("copy-status");
  button.hidden = false;
  button.addEventListener("click", function () {
    var codes = Array.prototype.map.call(list.querySelectorAll("code"), function (code) {
      return code.textContent.trim();
    });
    navigator.clipboard.writeText(codes.join("\n") + "\n").then(function () {
      status.textContent = "Copied " + codes.length + " codes.";
    }, function () {
      status.textContent = "Copying did not work here: download them or write them down.";
    });
  });
})();
