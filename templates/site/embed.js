/* mailer signup form: <script src="{{ base_url }}/embed.js" data-magnet="handbook" async></script> */
(function () {
  "use strict";
  var endpoint = {{ (base_url ~ "/subscribe")|tojson }};
  var script = document.currentScript;
  if (!script) { return; }
  var magnet = script.getAttribute("data-magnet") || "handbook";
  var buttonText = script.getAttribute("data-button") || "Get the handbook";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) { node.textContent = text; }
    return node;
  }

  var form = el("form", {"class": "mailer-signup", "novalidate": "", "style": "display:flex;flex-wrap:wrap;gap:8px;max-width:480px;font:inherit"});
  var email = el("input", {type: "email", name: "email", required: "", maxlength: "254", placeholder: "you@example.com",
                           "aria-label": "Email", style: "flex:2 1 200px;padding:10px;border:1px solid #bbb;border-radius:6px;font:inherit"});
  var name = el("input", {type: "text", name: "name", maxlength: "100", placeholder: "First name (optional)",
                          "aria-label": "First name", style: "flex:1 1 140px;padding:10px;border:1px solid #bbb;border-radius:6px;font:inherit"});
  var trap = el("input", {type: "text", name: "website", tabindex: "-1", autocomplete: "off", "aria-hidden": "true",
                          style: "position:absolute;left:-5000px"});
  var button = el("button", {type: "submit", style: "flex:1 1 100%;padding:11px;border:0;border-radius:6px;background:#1f4e79;color:#fff;font:inherit;font-weight:600;cursor:pointer"}, buttonText);
  var status = el("p", {role: "status", "aria-live": "polite", style: "flex:1 1 100%;margin:4px 0 0"});
  [email, name, trap, button, status].forEach(function (n) { form.appendChild(n); });
  script.parentNode.insertBefore(form, script.nextSibling);

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    status.textContent = "Sending…";
    fetch(endpoint, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({email: email.value, name: name.value, website: trap.value,
                            magnet: magnet, form: "script", source: location.href})
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (response.ok) {
          form.replaceChildren(el("p", {role: "status", style: "margin:0"}, body.message || "Check your inbox to confirm."));
        } else {
          status.textContent = body.error || "Something went wrong. Please try again in a minute.";
          button.disabled = false;
        }
      });
    }).catch(function () {
      status.textContent = "We could not reach the signup service. Please try again in a minute.";
      button.disabled = false;
    });
  });
})();
