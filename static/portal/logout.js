// Front-channel single logout: post the HTTP-POST LogoutRequests into their hidden frames and
// mark each app once its frame has loaded (Redirect-binding frames load by themselves). Then, when
// the person signed in through an upstream IdP, go on to its sign-out at the top level: once every
// frame has loaded, or after a few seconds (an app that never answers must not hold it up).
(function () {
  "use strict";
  var items = document.querySelectorAll("[data-slo-item]");
  var pending = items.length;
  var thenForm = document.querySelector("form[data-slo-then-form]");
  var thenLink = document.querySelector("a[data-slo-then-link]");
  var continued = false;
  var goOn = function () {
    if (continued) { return; }
    continued = true;
    if (thenForm) { thenForm.submit(); } else if (thenLink) { window.location.assign(thenLink.href); }
  };
  Array.prototype.forEach.call(items, function (item) {
    var frame = item.querySelector("[data-slo-frame]");
    var status = item.querySelector("[data-slo-status]");
    var form = item.querySelector("form[data-autosubmit]");
    var done = function () {
      if (item.getAttribute("data-slo-done")) { return; }
      status.textContent = "sign-out sent";
      item.setAttribute("data-slo-done", "true");
      pending -= 1;
      if (pending === 0) { goOn(); }
    };
    if (form) {
      frame.addEventListener("load", function () { if (frame.getAttribute("data-posted")) { done(); } });
      frame.setAttribute("data-posted", "1");
      form.submit();
    } else {
      // The source is set only now, so that the load event cannot come before the listener.
      frame.addEventListener("load", done);
      frame.src = frame.getAttribute("data-src");
    }
  });
  if (thenForm || thenLink) {
    if (pending === 0) { goOn(); } else { window.setTimeout(goOn, 5000); }
  }
})();
