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

  // A page that failed to save opens with its error summary (console/_form_errors.html) focused, so
  // that it is read out and in view; its links take the cursor to the field, opening what hides it.
  function focusField(field) {
    for (var node = field; node; node = node.parentElement) {
      if (node.tagName === "DETAILS") node.open = true;
    }
    field.scrollIntoView({ block: "center" });
    field.focus({ preventScroll: true });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var summary = document.querySelector("[data-error-summary]");
    if (summary) summary.focus();
  });
  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-error-summary] a[href^='#']");
    if (!link) return;
    var field = document.getElementById(link.getAttribute("href").slice(1));
    if (!field) return;
    event.preventDefault();
    focusField(field);
  });

  // Forms that hold edits until saved: <form data-unsaved-guard="dialog-id">. Following a link away
  // while such a form has unsaved changes opens the dialog: save and go on, discard, or stay.
  function unsavedChanges(form) {
    if (form.getAttribute("data-unsaved") === "true") return true;
    for (var i = 0; i < form.elements.length; i++) {
      var field = form.elements[i];
      if (field.type === "checkbox" || field.type === "radio") {
        if (field.checked !== field.defaultChecked) return true;
      } else if (field.tagName === "SELECT") {
        for (var j = 0; j < field.options.length; j++) {
          if (field.options[j].selected !== field.options[j].defaultSelected) return true;
        }
      } else if (field.type !== "hidden" && "defaultValue" in field && field.value !== field.defaultValue) {
        return true;
      }
    }
    return false;
  }
  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[href]");
    if (!link || event.defaultPrevented || link.target || link.hasAttribute("download")) return;
    if (link.getAttribute("href").charAt(0) === "#" || link.closest("dialog")) return;
    var form = document.querySelector("form[data-unsaved-guard]");
    if (!form || !unsavedChanges(form)) return;
    var dialog = document.getElementById(form.getAttribute("data-unsaved-guard"));
    if (!dialog || !dialog.showModal) return;
    event.preventDefault();
    var destination = new URL(link.href, window.location.href);
    var next = form.querySelector("[data-unsaved-next]");
    if (next) next.value = destination.origin === window.location.origin ? destination.pathname + destination.search : "";
    dialog.querySelector("[data-unsaved-discard]").href = link.href;
    dialog.showModal();
  });
  document.addEventListener("click", function (event) {
    var stay = event.target.closest("[data-unsaved-stay]");
    if (!stay) return;
    var dialog = stay.closest("dialog");
    var form = document.querySelector("form[data-unsaved-guard]");
    var next = form && form.querySelector("[data-unsaved-next]");
    if (next) next.value = "";
    dialog.close();
  });
})();
