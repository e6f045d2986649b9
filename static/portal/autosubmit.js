// Posts a form marked data-autosubmit as soon as the page is ready (HTTP-POST binding pages);
// without JavaScript the person presses its button.
(function () {
  "use strict";
  var form = document.querySelector("form[data-autosubmit]");
  if (form) { form.submit(); }
})();
