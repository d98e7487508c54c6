/* The simulator's stand-in for Shopify's web pixels manager on a storefront page: loads
   each of the shop's app pixels in a web worker (the strict sandbox) when the visitor's
   consent covers what the pixel's extension declares, answers its browser-storage calls
   from this page, emits page_viewed and the page's other standard events, and offers
   window.Shopify.customerPrivacy.setTrackingConsent as the storefront's Customer Privacy
   API does (the answer is kept in the _tracking_consent cookie). */
"use strict";
(() => {
  const config = JSON.parse(document.getElementById("web-pixels-manager-config").textContent);
  const COOKIE = "_tracking_consent";
  const readCookie = (name) => {
    const found = document.cookie.split("; ").find((part) => part.startsWith(name + "="));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : null;
  };
  let consent = { ...config.consent };
  try {
    const saved = JSON.parse(readCookie(COOKIE) || "null");
    if (saved) consent = { ...consent, ...saved };
  } catch { /* an unreadable cookie: the shop's defaults */ }
  const status = () => ({
    analyticsProcessingAllowed: Boolean(consent.analytics),
    marketingAllowed: Boolean(consent.marketing),
    preferencesProcessingAllowed: Boolean(consent.preferences),
    saleOfDataAllowed: Boolean(consent.sale_of_data),
  });
  const permits = (needs) =>
    (!needs.analytics || consent.analytics) && (!needs.marketing || consent.marketing) &&
    (!needs.preferences || consent.preferences) && (needs.sale_of_data !== "enabled" || consent.sale_of_data);
  const location = () => {
    const l = window.location;
    return { href: l.href, hash: l.hash, host: l.host, hostname: l.hostname, origin: l.origin, pathname: l.pathname, port: l.port, protocol: l.protocol, search: l.search };
  };
  const context = () => ({
    document: { location: location(), referrer: document.referrer, title: document.title, characterSet: document.characterSet },
    window: { location: location(), innerWidth: window.innerWidth, innerHeight: window.innerHeight },
    navigator: { userAgent: navigator.userAgent, language: navigator.language, cookieEnabled: navigator.cookieEnabled },
  });
  const storageAnswer = (area, op, args) => {
    if (area === "cookie") {
      if (op === "get") return readCookie(args[0]) || "";
      document.cookie = args[0];
      return args[0];
    }
    const store = area === "sessionStorage" ? window.sessionStorage : window.localStorage;
    if (op === "getItem") return store.getItem(args[0]);
    if (op === "setItem") return store.setItem(args[0], args[1]);
    if (op === "removeItem") return store.removeItem(args[0]);
    if (op === "clear") return store.clear();
    return null;
  };
  const workers = [];
  for (const pixel of config.pixels) {
    if (consent.enforce !== false && !permits(pixel.privacy)) continue;
    const worker = new Worker(pixel.worker);
    worker.onmessage = ({ data: message }) => {
      if (message.type !== "browser") return;
      worker.postMessage({ type: "browser-result", id: message.id, value: storageAnswer(message.area, message.op, message.args) });
    };
    const data = { shop: config.shop, customer: null, cart: null };
    worker.postMessage({ type: "init", settings: pixel.settings, init: { context: context(), data, customerPrivacy: status() } });
    workers.push(worker);
  }
  window.__webPixels = { loaded: workers.length };
  const emit = (name, data) => {
    const event = { id: Math.random().toString(36).slice(2), name, type: "standard", timestamp: new Date().toISOString(), clientId: "sim-client", context: context(), data: data || {} };
    workers.forEach((worker) => worker.postMessage({ type: "event", event }));
  };
  window.Shopify = window.Shopify || {};
  window.Shopify.customerPrivacy = {
    setTrackingConsent(choice, callback) {
      for (const key of ["analytics", "marketing", "preferences", "sale_of_data"]) {
        if (key in choice) consent[key] = Boolean(choice[key]);
      }
      const kept = { analytics: consent.analytics, marketing: consent.marketing, preferences: consent.preferences, sale_of_data: consent.sale_of_data };
      document.cookie = `${COOKIE}=${encodeURIComponent(JSON.stringify(kept))}; path=/; SameSite=Lax`;
      workers.forEach((worker) => worker.postMessage({ type: "consent", customerPrivacy: status() }));
      if (callback) callback();
    },
    currentVisitorConsent: () => ({ ...status() }),
  };
  emit("page_viewed", {});
  for (const event of config.events || []) emit(event.name, event.data);
})();
