/* A small stand-in for App Bridge, served by the local simulator in place of Shopify's CDN
   script. Like the real one it: exposes shopify.idToken(); adds a fresh
   "Authorization: Bearer <ID token>" to the page's same-origin fetch requests and retries
   once on 401 + X-Shopify-Retry-Invalid-Session-Request; and on the bounce page
   (?shopify-reload=/path) reloads the original URL with a new id_token. */
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="shopify-api-key"]');
  var script = document.currentScript;
  var apiKey = (meta && meta.content) || (script && script.getAttribute("data-api-key")) || "";
  var pending = {};
  var seq = 0;

  function idToken() {
    return new Promise(function (resolve, reject) {
      var id = ++seq;
      pending[id] = resolve;
      window.parent.postMessage({ type: "sim:id-token-request", id: id, apiKey: apiKey }, "*");
      setTimeout(function () {
        if (pending[id]) { delete pending[id]; reject(new Error("App Bridge: no ID token from the admin")); }
      }, 5000);
    });
  }

  window.addEventListener("message", function (event) {
    var data = event.data || {};
    if (event.source !== window.parent || data.type !== "sim:id-token" || !pending[data.id]) return;
    pending[data.id](data.token);
    delete pending[data.id];
  });

  var nativeFetch = window.fetch.bind(window);
  window.fetch = function (input, init) {
    var url = new URL(typeof input === "string" ? input : input.url, location.href);
    if (url.origin !== location.origin) return nativeFetch(input, init);
    init = Object.assign({}, init || {});
    var headers = new Headers(init.headers || (typeof input !== "string" ? input.headers : undefined));
    function send(retried) {
      return idToken().then(function (token) {
        headers.set("Authorization", "Bearer " + token);
        init.headers = headers;
        return nativeFetch(input, init).then(function (response) {
          var retry = response.headers.get("X-Shopify-Retry-Invalid-Session-Request") === "1";
          return response.status === 401 && retry && !retried ? send(true) : response;
        });
      });
    }
    return send(false);
  };

  window.shopify = {
    config: { apiKey: apiKey },
    idToken: idToken,
    toast: { show: function (message) { document.dispatchEvent(new CustomEvent("sim:toast", { detail: message })); } }
  };

  var reload = new URLSearchParams(location.search).get("shopify-reload");
  if (reload && reload.charAt(0) === "/" && reload.charAt(1) !== "/") {
    idToken().then(function (token) {
      var target = new URL(reload, location.origin);
      target.searchParams.set("id_token", token);
      location.replace(target.toString());
    });
  }
})();
