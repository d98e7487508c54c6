/* Interlayer's web pixel. Runs in Shopify's strict sandbox (a web worker): no DOM, browser
   storage through the async `browser` API, events through `analytics.subscribe`.
   https://shopify.dev/docs/api/web-pixels-api

   When a shopper lands from a partner's Interlayer widget, the URL carries the click's
   sealed reference (il_ref): it is kept in this store's browser storage for 7 days (the
   last click wins) and reported as a landing. When that browser completes a checkout, the order's id,
   total, currency and line count go to Interlayer with the reference; the app decides
   whether the order counts (the attribution rules live there, in one place). Nothing is
   sent or kept without the shopper's consent to analytics and marketing, and nothing that
   identifies the customer is ever sent. */
import { register } from "@shopify/web-pixels-extension";

const REFERENCE_PARAMETER = "il_ref";
const STORAGE_KEY = "interlayer_click_reference";
// Kept no longer than an order can be attributed to the click (the app's
// attribution.ATTRIBUTION_WINDOW): after that the browser forgets it, unsent.
const KEPT_FOR_MS = 7 * 24 * 60 * 60 * 1000;

// The kept reference while it may still attribute an order, else null (and forgotten).
// Kept as {ref, at}; a bare string is a reference kept by an earlier release of this
// pixel, sent for the app to judge by its click's time and kept 7 days from now on.
async function keptReference(browser) {
  const raw = await browser.localStorage.getItem(STORAGE_KEY);
  if (!raw) return null;
  let kept;
  try {
    kept = JSON.parse(raw);
  } catch {
    // From today it ages like the others.
    await browser.localStorage.setItem(STORAGE_KEY, JSON.stringify({ ref: raw, at: Date.now() }));
    return raw;
  }
  if (kept && typeof kept.ref === "string" && Date.now() - kept.at <= KEPT_FOR_MS) return kept.ref;
  await browser.localStorage.removeItem(STORAGE_KEY);
  return null;
}

register(({ analytics, browser, init, settings, customerPrivacy }) => {
  // Shopify loads the pixel only with the permissions its TOML declares; the shopper can
  // still change their mind on any page, so every event checks the latest answer.
  let privacy = init.customerPrivacy || {};
  const allowed = () => Boolean(privacy.analyticsProcessingAllowed && privacy.marketingAllowed);
  customerPrivacy.subscribe("visitorConsentCollected", (event) => {
    privacy = event.customerPrivacy || {};
    if (!allowed()) browser.localStorage.removeItem(STORAGE_KEY).catch(() => {});
  });

  const shop = init.data && init.data.shop ? init.data.shop.myshopifyDomain : "";
  const send = (body) =>
    fetch(settings.endpoint, {
      method: "POST",
      // text/plain: a simple cross-origin request, no preflight.
      headers: { "Content-Type": "text/plain" },
      body: JSON.stringify({ ...body, key: settings.key, shop }),
      keepalive: true,
    }).catch(() => { /* attribution is best effort; the shopper's page is never affected */ });

  analytics.subscribe("page_viewed", async (event) => {
    if (!allowed()) return;
    let reference;
    try {
      reference = new URL(event.context.document.location.href).searchParams.get(REFERENCE_PARAMETER);
    } catch {
      return;
    }
    if (!reference || reference.length > 300) {
      await keptReference(browser); // forgets one kept too long
      return;
    }
    await browser.localStorage.setItem(STORAGE_KEY, JSON.stringify({ ref: reference, at: Date.now() }));
    send({ event: "landing", ref: reference });
  });

  analytics.subscribe("checkout_completed", async (event) => {
    if (!allowed()) return;
    const reference = await keptReference(browser);
    if (!reference) return;
    const checkout = event.data.checkout || {};
    const total = checkout.totalPrice || {};
    send({
      event: "checkout_completed",
      ref: reference,
      order: {
        id: String((checkout.order && checkout.order.id) || ""),
        total: total.amount,
        currency: total.currencyCode || checkout.currencyCode,
        lines: (checkout.lineItems || []).length,
      },
    });
  });
});
