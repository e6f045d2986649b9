// Front-channel single logout: post the HTTP-POST LogoutRequests into their hidden frames and
// mark each app once its frame has loaded (Redirect-binding frames load by themselves).
(function () {
  "use strict";
  var items = document.querySelectorAll("[data-slo-item]");
  Array.prototype.forEach.call(items, function (item) {
    var frame = item.querySelector("[data-slo-frame]");
    var status = item.querySelector("[data-slo-status]");
    var form = item.querySelector("form[data-autosubmit]");
    var done = function () { status.textContent = "sign-out sent"; item.setAttribute("data-slo-done", "true"); };
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
})();
