/* Interlayer's web pixel. Runs in Shopify's strict sandbox (a web worker): no DOM, browser
   storage through the async `browser` API, events through `analytics.subscribe`.
   https://shopify.dev/docs/api/web-pixels-api

   When a shopper lands from a partner's Interlayer widget, the URL carries the click's
   sealed reference (il_ref): it is kept in this store's browser storage for 7 days with
   the few landed with before it, and reported as a landing. When that browser completes a
   checkout, the order's id, total, currency and line count go to Interlayer with the kept
   references, newest first; the app gives the order to the last click among them still
   within its window (the attribution rules live there, in one place), so a link with an
   old click's reference opened later takes nothing from the click that brought the
   shopper. Nothing is sent or kept without the shopper's consent to analytics and
   marketing, and nothing that identifies the customer is ever sent. */
import { register } from "@shopify/web-pixels-extension";

const REFERENCE_PARAMETER = "il_ref";
const STORAGE_KEY = "interlayer_click_reference";
// Kept no longer than an order can be attributed to the click (the app's
// attribution.ATTRIBUTION_WINDOW): after that the browser forgets it, unsent.
const KEPT_FOR_MS = 7 * 24 * 60 * 60 * 1000;
// References kept at most (the app's attribution.MAX_REFERENCES), the latest landings.
const KEPT_AT_MOST = 5;
const LONGEST_REFERENCE = 300; // the app's pixel.MAX_REFERENCE_CHARS

// The kept references still young enough to attribute an order, newest landing first, as
// [{ref, at}]; older ones are forgotten. Kept as {refs: [...]}. An earlier release of this
// pixel kept one, as {ref, at} or a bare string: read as the only one (a bare string aging
// from now, sent for the app to judge by its click's time).
async function keptReferences(browser) {
  const raw = await browser.localStorage.getItem(STORAGE_KEY);
  if (!raw) return [];
  let kept;
  try {
    kept = JSON.parse(raw);
  } catch {
    kept = { ref: raw, at: Date.now() };
  }
  const all = Array.isArray(kept && kept.refs) ? kept.refs : [kept];
  const young = all
    .filter((entry) => entry && typeof entry.ref === "string" && typeof entry.at === "number")
    .filter((entry) => Date.now() - entry.at <= KEPT_FOR_MS)
    .slice(0, KEPT_AT_MOST);
  if (JSON.stringify({ refs: young }) !== raw) await keep(browser, young);
  return young;
}

async function keep(browser, entries) {
  if (entries.length) await browser.localStorage.setItem(STORAGE_KEY, JSON.stringify({ refs: entries }));
  else await browser.localStorage.removeItem(STORAGE_KEY);
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
    const kept = await keptReferences(browser); // forgets those kept too long
    if (!reference || reference.length > LONGEST_REFERENCE) return;
    // A link landed with again keeps the time it was first kept: it ages all the same.
    const landed = kept.find((entry) => entry.ref === reference) || { ref: reference, at: Date.now() };
    const others = kept.filter((entry) => entry.ref !== reference);
    await keep(browser, [landed, ...others].slice(0, KEPT_AT_MOST));
    send({ event: "landing", ref: reference });
  });

  analytics.subscribe("checkout_completed", async (event) => {
    if (!allowed()) return;
    const kept = await keptReferences(browser);
    if (!kept.length) return;
    const checkout = event.data.checkout || {};
    const total = checkout.totalPrice || {};
    send({
      event: "checkout_completed",
      ref: kept[0].ref,
      earlier: kept.slice(1).map((entry) => entry.ref),
      order: {
        id: String((checkout.order && checkout.order.id) || ""),
        total: total.amount,
        currency: total.currencyCode || checkout.currencyCode,
        lines: (checkout.lineItems || []).length,
      },
    });
  });
});
