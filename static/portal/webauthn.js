// Passkeys (WebAuthn): runs the browser ceremony for a form marked data-webauthn="register" or
// "authenticate", whose data-options holds the server's options (JSON, base64url binary fields),
// then posts the credential back as JSON in the form's hidden "credential" field.
(function () {
  "use strict";

  function toBytes(value) {
    var base64 = value.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) { base64 += "="; }
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) { binary += String.fromCharCode(bytes[i]); }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (item) { return Object.assign({}, item, { id: toBytes(item.id) }); });
  }

  function creationOptions(options) {
    options.challenge = toBytes(options.challenge);
    options.user.id = toBytes(options.user.id);
    options.excludeCredentials = descriptors(options.excludeCredentials);
    return options;
  }

  function requestOptions(options) {
    options.challenge = toBytes(options.challenge);
    options.allowCredentials = descriptors(options.allowCredentials);
    return options;
  }

  function serialize(credential) {
    var response = credential.response;
    var json = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment || null,
      response: { clientDataJSON: toBase64url(response.clientDataJSON) }
    };
    if (response.attestationObject) {
      json.response.attestationObject = toBase64url(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      json.response.authenticatorData = toBase64url(response.authenticatorData);
      json.response.signature = toBase64url(response.signature);
      json.response.userHandle = response.userHandle ? toBase64url(response.userHandle) : null;
    }
    return JSON.stringify(json);
  }

  Array.prototype.forEach.call(document.querySelectorAll("form[data-webauthn]"), function (form) {
    var status = form.querySelector("[data-webauthn-status]");
    var say = function (text) { if (status) { status.textContent = text; } };
    if (!window.PublicKeyCredential || !navigator.credentials) {
      say("This browser cannot use passkeys.");
      return;
    }
    form.addEventListener("submit", function (event) {
      if (form.elements.credential.value) { return; }
      event.preventDefault();
      var options = JSON.parse(form.getAttribute("data-options"));
      var ceremony = form.getAttribute("data-webauthn") === "register"
        ? navigator.credentials.create({ publicKey: creationOptions(options) })
        : navigator.credentials.get({ publicKey: requestOptions(options) });
      say("Follow your browser's prompt…");
      ceremony.then(function (credential) {
        form.elements.credential.value = serialize(credential);
        form.submit();
      }).catch(function (error) {
        say("The passkey prompt was cancelled or failed (" + error.name + "). Try again.");
      });
    });
  });
})();
