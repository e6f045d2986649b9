// Filters the launchpad tiles as the person types (the form still works without JavaScript).
(function () {
  "use strict";
  var input = document.querySelector("[data-filter-tiles]");
  if (!input) { return; }
  var list = document.querySelector(input.getAttribute("data-filter-tiles"));
  var none = document.getElementById("no-match");
  if (!list) { return; }
  var tiles = Array.prototype.slice.call(list.querySelectorAll(".tile"));
  input.addEventListener("input", function () {
    var query = input.value.trim().toLowerCase();
    var shown = 0;
    tiles.forEach(function (tile) {
      var match = !query || tile.getAttribute("data-name").indexOf(query) !== -1;
      tile.hidden = !match;
      if (match) { shown += 1; }
    });
    if (none) { none.hidden = shown !== 0; }
  });
  input.form.addEventListener("submit", function (event) { event.preventDefault(); });
})();
