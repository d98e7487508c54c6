/* The simulator's stand-in for the runtime Shopify gives an app pixel in its strict
   sandbox (a web worker): register(), analytics.subscribe, customerPrivacy.subscribe,
   init, settings, and the async browser APIs that the top page answers.
   https://shopify.dev/docs/api/web-pixels-api/standard-api */
"use strict";
(() => {
  let registered = null;
  const subscribers = {};
  const privacySubscribers = {};
  const pending = new Map();
  let sequence = 0;
  const ask = (area, op, args) => new Promise((resolve) => {
    sequence += 1;
    pending.set(sequence, resolve);
    self.postMessage({ type: "browser", id: sequence, area, op, args });
  });
  const storage = (area) => ({
    getItem: (key) => ask(area, "getItem", [key]),
    setItem: (key, value) => ask(area, "setItem", [key, String(value)]),
    removeItem: (key) => ask(area, "removeItem", [key]),
    clear: () => ask(area, "clear", []),
  });
  const api = {
    analytics: { subscribe(name, callback) { (subscribers[name] = subscribers[name] || []).push(callback); } },
    customerPrivacy: { subscribe(name, callback) { (privacySubscribers[name] = privacySubscribers[name] || []).push(callback); } },
    browser: {
      localStorage: storage("localStorage"),
      sessionStorage: storage("sessionStorage"),
      cookie: { get: (name) => ask("cookie", "get", [name]), set: (cookie) => ask("cookie", "set", [cookie]) },
      sendBeacon: (url, body) => fetch(url, { method: "POST", body, keepalive: true }).then(() => true, () => false),
    },
  };
  const run = (callbacks, value) => (callbacks || []).forEach((callback) => {
    try {
      Promise.resolve(callback(value)).catch((error) => console.error("pixel:", error));
    } catch (error) {
      console.error("pixel:", error);
    }
  });
  self.__webPixelRuntime = { register(callback) { registered = callback; } };
  self.onmessage = ({ data: message }) => {
    if (message.type === "browser-result") {
      const resolve = pending.get(message.id);
      pending.delete(message.id);
      if (resolve) resolve(message.value);
    } else if (message.type === "init" && registered) {
      registered({ ...api, init: message.init, settings: message.settings });
    } else if (message.type === "event") {
      for (const name of [message.event.name, "all_standard_events", "all_events"]) run(subscribers[name], message.event);
    } else if (message.type === "consent") {
      run(privacySubscribers.visitorConsentCollected, { customerPrivacy: message.customerPrivacy });
    }
  };
})();
