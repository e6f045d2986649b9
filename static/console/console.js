// Console behaviour that needs script; everything here is progressive: pages work without it.
(function () {
  "use strict";

  // Copy buttons: <button data-copy-target="element-id">Copy</button>
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy-target"));
    if (!source || !navigator.clipboard) return;
    var text = source.value !== undefined ? source.value : source.textContent;
    navigator.clipboard.writeText(text.trim()).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      button.classList.add("c-copied");
      setTimeout(function () { button.textContent = label; button.classList.remove("c-copied"); }, 2000);
    });
  });

  // Forms that need a second thought: <form data-confirm="Delete jane.doe?">
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);

  // Auto-submitting filters: <select data-autosubmit> submits its form on change.
  document.addEventListener("change", function (event) {
    if (event.target.hasAttribute && event.target.hasAttribute("data-autosubmit") && event.target.form) {
      event.target.form.requestSubmit();
    }
  });

  // Small screens: the menu button shows and hides the side navigation.
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest("[data-menu-toggle]");
    if (!toggle) return;
    var menu = document.getElementById(toggle.getAttribute("aria-controls"));
    var open = menu.classList.toggle("c-open");
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
  });
})();
