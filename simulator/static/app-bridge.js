/* A small stand-in for App Bridge, served by the local simulator in place of Shopify's CDN
   script. Like the real one it: exposes shopify.idToken(); adds a fresh
   "Authorization: Bearer <ID token>" to the page's same-origin fetch requests and retries
   once on 401 + X-Shopify-Retry-Invalid-Session-Request; and on the bounce page
   (?shopify-reload=/path) reloads the original URL with a new id_token. It also speaks
   App Bridge's UI to the simulated admin: title bar, navigation menu, save bar, toasts and
   the resource picker (shopify.toast.show, shopify.saveBar, shopify.resourcePicker). */
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

  // --- App Bridge UI: the admin draws it around the frame -------------------------------
  // As with the real App Bridge, the app declares its title bar (<s-page heading> and its
  // action slots, or <ui-title-bar>), its navigation (<ui-nav-menu>) and its save bar
  // (<ui-save-bar>) in its own DOM; App Bridge describes them to the admin, which renders
  // them outside the iframe and sends clicks back.
  function post(message) { window.parent.postMessage(message, "*"); }

  var titleActions = [];
  var lastChrome = "";
  function describeChrome() {
    var bar = document.querySelector("ui-title-bar");
    var page = document.querySelector("s-page");
    var title = (bar && bar.getAttribute("title")) || (page && page.getAttribute("heading")) || document.title;
    titleActions = bar
      ? Array.prototype.slice.call(bar.querySelectorAll("button"))
      : page ? Array.prototype.slice.call(page.querySelectorAll(':scope > [slot="primary-action"], :scope > [slot="secondary-actions"]')) : [];
    var menu = document.querySelector("ui-nav-menu");
    return {
      type: "sim:chrome",
      title: title,
      actions: titleActions.map(function (node, i) {
        return {
          id: i,
          label: node.textContent.trim(),
          primary: node.getAttribute("slot") === "primary-action" || node.getAttribute("variant") === "primary",
          disabled: node.hasAttribute("disabled") || node.hasAttribute("loading")
        };
      }),
      nav: menu ? Array.prototype.map.call(menu.querySelectorAll("a"), function (a) {
        return { label: a.textContent.trim(), href: a.getAttribute("href"), home: a.getAttribute("rel") === "home" };
      }) : []
    };
  }
  var chromeTimer;
  function syncChrome() {
    clearTimeout(chromeTimer);
    chromeTimer = setTimeout(function () {
      var chrome = describeChrome();
      var text = JSON.stringify(chrome);
      if (text !== lastChrome) { lastChrome = text; post(chrome); }
    }, 30);
  }

  function saveBarState(id, visible) {
    var bar = document.getElementById(id);
    if (!bar || bar.localName !== "ui-save-bar") return Promise.reject(new Error("App Bridge: no <ui-save-bar id=\"" + id + "\">"));
    var buttons = Array.prototype.slice.call(bar.querySelectorAll("button"));
    var save = buttons.filter(function (b) { return b.getAttribute("variant") === "primary"; })[0];
    var discard = buttons.filter(function (b) { return b !== save; })[0];
    bar.showing = visible;
    post({
      type: "sim:save-bar", id: id, visible: visible,
      save: (save && save.textContent.trim()) || "Save",
      discard: (discard && discard.textContent.trim()) || "Discard",
      message: bar.getAttribute("message") || "Unsaved changes"
    });
    return Promise.resolve();
  }

  var pickers = {};
  function resourcePicker(options) {
    options = options || {};
    return new Promise(function (resolve) {
      var id = ++seq;
      pickers[id] = resolve;
      post({
        type: "sim:resource-picker", id: id, resource: options.type || "product",
        multiple: !!options.multiple,
        selectionIds: (options.selectionIds || []).map(function (item) { return item.id; })
      });
    });
  }

  window.addEventListener("message", function (event) {
    var data = event.data || {};
    if (event.source !== window.parent) return;
    if (data.type === "sim:title-action" && titleActions[data.id]) titleActions[data.id].click();
    if (data.type === "sim:save-bar-action") {
      var bar = document.getElementById(data.id);
      if (!bar) return;
      var buttons = Array.prototype.slice.call(bar.querySelectorAll("button"));
      var save = buttons.filter(function (b) { return b.getAttribute("variant") === "primary"; })[0];
      var target = data.action === "save" ? save : buttons.filter(function (b) { return b !== save; })[0];
      if (target) target.click();
    }
    if (data.type === "sim:resource-picker-result" && pickers[data.id]) {
      pickers[data.id](data.selection || undefined); // cancelling resolves with nothing
      delete pickers[data.id];
    }
  });

  // The App Bridge elements render nothing inside the app's frame.
  ["ui-title-bar", "ui-nav-menu", "ui-save-bar"].forEach(function (name) {
    if (customElements.get(name)) return;
    customElements.define(name, class extends HTMLElement {
      connectedCallback() { this.style.display = "none"; syncChrome(); }
      show() { return saveBarState(this.id, true); }
      hide() { return saveBarState(this.id, false); }
      toggle() { return saveBarState(this.id, !this.showing); }
    });
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", watchChrome);
  else watchChrome();
  function watchChrome() {
    syncChrome();
    new MutationObserver(syncChrome).observe(document.body, {
      subtree: true, childList: true, characterData: true, attributes: true,
      attributeFilter: ["heading", "title", "slot", "href", "disabled", "loading"]
    });
  }

  window.shopify = {
    config: { apiKey: apiKey },
    idToken: idToken,
    toast: {
      show: function (message, options) {
        options = options || {};
        post({ type: "sim:toast", message: String(message), isError: !!options.isError, duration: options.duration || 5000 });
        return "toast-" + (++seq);
      },
      hide: function () {}
    },
    saveBar: {
      show: function (id) { return saveBarState(id, true); },
      hide: function (id) { return saveBarState(id, false); },
      toggle: function (id) { var bar = document.getElementById(id); return saveBarState(id, !(bar && bar.showing)); },
      leaveConfirmation: function () { return Promise.resolve(); }
    },
    resourcePicker: resourcePicker
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
