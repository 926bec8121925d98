/* mailer signup form: <script src="{{ base_url }}/embed.js" data-magnet="handbook" async></script> */
(function () {
  "use strict";
  var endpoint = {{ (base_url ~ "/subscribe")|tojson }};
  var tokenUrl = {{ (base_url ~ "/embed/token")|tojson }};
  var captcha = {{ captcha|tojson }};
  var accent = {{ newsletter.accent|tojson }};
  var script = document.currentScript;
  if (!script) { return; }
  var magnet = script.getAttribute("data-magnet") || "handbook";
  var buttonText = script.getAttribute("data-button") || "Get the handbook";
  var formToken = "";

  /* Styles through the CSSOM, not style attributes: a blog with a strict Content-Security-Policy allows these. */
  function el(tag, attrs, text, css) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) { node.textContent = text; }
    if (css) { node.style.cssText = css; }
    return node;
  }

  var field = "padding:10px;border:1px solid #bbb;border-radius:6px;font:inherit";
  var form = el("form", {"class": "mailer-signup", "novalidate": ""}, "", "display:flex;flex-wrap:wrap;gap:8px;max-width:480px;font:inherit");
  var email = el("input", {type: "email", name: "email", required: "", maxlength: "254", placeholder: "you@example.com",
                           "aria-label": "Email"}, "", "flex:2 1 200px;" + field);
  var name = el("input", {type: "text", name: "name", maxlength: "100", placeholder: "First name (optional)",
                          "aria-label": "First name"}, "", "flex:1 1 140px;" + field);
  var trap = el("input", {type: "text", name: "website", tabindex: "-1", autocomplete: "off", "aria-hidden": "true"}, "",
                "position:absolute;left:-5000px");
  var button = el("button", {type: "submit", disabled: ""}, buttonText,
                  "flex:1 1 100%;padding:11px;border:0;border-radius:6px;background:" + accent + ";color:#fff;font:inherit;font-weight:600;cursor:pointer");
  var status = el("p", {role: "status", "aria-live": "polite"}, "", "flex:1 1 100%;margin:4px 0 0");
  [email, name, trap].forEach(function (n) { form.appendChild(n); });
  if (captcha) {
    form.appendChild(el("div", {"class": captcha.widget_class, "data-sitekey": captcha.site_key}, "", "flex:1 1 100%"));
    document.head.appendChild(el("script", {src: captcha.script, async: "", defer: ""}));
  }
  [button, status].forEach(function (n) { form.appendChild(n); });
  script.parentNode.insertBefore(form, script.nextSibling);

  /* The reader's time zone ("Europe/Berlin"), so a digest can reach them at a time on their own clock. */
  function timeZone() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return ""; }
  }

  /* The form token says when the form was shown; the button waits for it (or for the service's silence). */
  function fetchToken(delay) {
    return fetch(tokenUrl, {credentials: "omit", cache: "no-store"}).then(function (response) {
      return response.ok ? response.json() : {};
    }).then(function (body) {
      /* A renewed token replaces the old one only once it is a few seconds old: it must not look too quick. */
      if (body.token) { setTimeout(function () { formToken = body.token; }, delay); }
    }).catch(function () {});
  }
  fetchToken(0).then(function () { setTimeout(function () { button.disabled = false; }, 0); });
  /* A page left open for hours still sends a token the server accepts. */
  setInterval(function () { fetchToken(5000); }, 30 * 60 * 1000);

  /* The server found the token too old (a laptop that slept, a tab the browser froze): the next try goes without
     one (the honeypot alone judges it, as for the plain form) until a fresh token is a few seconds old. */
  function renewStaleToken() {
    formToken = "";
    fetchToken(5000);
  }

  function captchaResponse() {
    var input = captcha && form.querySelector("[name='cf-turnstile-response'], [name='h-captcha-response']");
    return input ? input.value : "";
  }

  function resetCaptcha() {
    var api = captcha && (window.turnstile || window.hcaptcha);
    if (api && api.reset) { try { api.reset(); } catch (e) { /* the widget is gone; nothing to reset */ } }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    status.textContent = "Sending…";
    fetch(endpoint, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({email: email.value, name: name.value, website: trap.value, form_token: formToken,
                            captcha: captchaResponse(), magnet: magnet, form: "script", source: location.href,
                            time_zone: timeZone()})
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (response.ok) {
          form.replaceChildren(el("p", {role: "status"}, body.message || "Check your inbox to confirm.", "margin:0"));
        } else {
          status.textContent = body.error || "Something went wrong. Please try again in a minute.";
          button.disabled = false;
          resetCaptcha();
          if (body.field === "form") { renewStaleToken(); }
        }
      });
    }).catch(function () {
      status.textContent = "We could not reach the signup service. Please try again in a minute.";
      button.disabled = false;
    });
  });
})();
