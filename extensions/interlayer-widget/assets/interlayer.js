/* Interlayer storefront widget: a row of partner products in a Shadow DOM.
   No framework. Product data is inserted as text, never HTML. The row's height is
   reserved before data arrives and kept while it renders, so nothing on the page moves;
   when there is nothing relevant, a slot the shopper has not reached yet is removed and
   leaves no gap, while one already on screen (or scrolled past) stays as empty space:
   taking it away would move the page under the shopper (in the theme editor the slot says
   why it is empty instead). An impression is counted once, when at least half the row has
   been visible for a second; never in the theme editor. */
(function () {
  "use strict";
  const script = document.currentScript;
  // The app block and the app embed both include this script: it runs once, from the
  // first tag in the page (the block's: the embed's comes before </body>), into the
  // block's slot when there is one. In the theme editor it then follows the block's section.
  if (!script || window.__interlayerLoaded) return;
  window.__interlayerLoaded = true;
  const data = script.dataset;
  // The shopper's strings come from the extension's locale files through the Liquid.
  const text = {
    heading: data.textHeading || "You may also like",
    fromPartners: data.textFromPartners || "From partner stores",
    list: data.textList || "Recommended products",
    previous: data.textPrevious || "Previous products",
    next: data.textNext || "Next products",
  };
  const proxy = (data.proxy || "/apps/interlayer").replace(/\/$/, "");
  // The shopper's storefront root (routes.root_url: "/" or "/fr"), so a link to the store's
  // own product keeps their language and the domain they are on.
  const home = (data.root || "").replace(/\/$/, "") + "/";
  // The theme editor (request.design_mode) shows the row, but a merchant's preview is no
  // shopper's view or click: none is reported, and partner items link nowhere.
  const design = "designMode" in data;
  const query = new URLSearchParams({ page_type: data.pageType || "" });
  if (data.productId) query.set("product_id", data.productId);
  if (data.locale) query.set("locale", data.locale);  // prices formatted for the shopper
  // The shopper's currency (Shopify Markets): a price in another is written with its code.
  if (data.currency) query.set("currency", data.currency);
  let HEIGHT = 330;
  let slot = null;
  let run = 0;  // an answer for an earlier row is dropped
  let stops = [];  // the row's observers, stopped when it goes

  // A block added twice (say, the product template and the footer group) gets one row, in
  // the first; the others go as an empty answer's slot does, not stay as blank space.
  const slots = document.querySelectorAll("[data-interlayer-slot]");
  for (let i = 1; i < slots.length; i++) gone(slots[i]);
  show(slots[0] || embedSlot());
  // The theme editor re-renders a section in place (block added, setting changed) and runs
  // no page-load script again (shopify.dev: "Integrate sections and blocks with the theme editor").
  document.addEventListener("shopify:section:load", function (event) {
    const next = event.target.querySelector("[data-interlayer-slot]");
    if (!next) return;
    if (slot && !slot.hasAttribute("data-interlayer-slot")) slot.remove();  // the embed's row
    show(next);
  });
  document.addEventListener("shopify:section:unload", function (event) {
    if (slot && event.target.contains(slot)) stop();
  });
  // A block's markup added after the page loaded, by the theme's own scripts (a product
  // section rendered again for a variant, a quick view): the row moves there if its slot
  // was replaced; otherwise the page has its row, and the newcomer goes rather than stay
  // a blank box (it appears with the shopper's click that opened it: nothing shifts
  // under them).
  if (!design && "MutationObserver" in window) {
    const added = new MutationObserver(function (records) {
      records.forEach(function (record) {
        record.addedNodes.forEach(function (node) {
          if (node.nodeType !== 1) return;
          const found = node.matches("[data-interlayer-slot]")
            ? [node] : node.querySelectorAll("[data-interlayer-slot]");
          found.forEach(function (next) {
            if (next === slot) return;
            if (slot && slot.isConnected) next.remove();
            else show(next);
          });
        });
      });
    });
    added.observe(document.body, { childList: true, subtree: true });
  }

  function embedSlot() {
    // Reserved by the app embed's markup as the page was read (app-embed.liquid); made here
    // only where that inline script could not run (a policy that refuses inline scripts).
    const reserved = document.querySelector("[data-interlayer-embed]");
    if (reserved) {
      reserved.setAttribute("data-interlayer-claimed", "");
      // Hidden by the embed's timer (this script came after 10 s): its space is still kept,
      // so the row shows in it (and only a row shown counts a view), nothing moving.
      reserved.style.visibility = "";
      return reserved;
    }
    const anchor = find(data.anchor) || document.querySelector("main");
    if (!anchor || !anchor.parentNode) return null;
    // A new row moves what follows the anchor: only where the shopper cannot see it yet.
    if (anchor.getBoundingClientRect().bottom < window.innerHeight) return null;
    const node = document.createElement("div");
    // display:block inline, as the block's slot: themes hide empty divs (Dawn's div:empty).
    node.style.cssText = "display:block;min-height:" + HEIGHT + "px";
    anchor.parentNode.insertBefore(node, anchor.nextSibling);
    return node;
  }

  function stop() {
    run++;
    stops.forEach(function (f) { f(); });
    stops = [];
  }

  function show(next) {
    stop();
    slot = next;
    if (!slot) return;
    const mine = run;
    HEIGHT = parseInt(slot.style.minHeight, 10) || 330;
    fetch(proxy + "/recommendations?" + query, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (mine !== run) return;
        if (body && body.items && body.items.length) render(body);
        else if (body && body.items) empty(slot);
        else gone(slot);
      })
      .catch(function () { if (mine === run) gone(slot); });
  }

  function find(selector) {
    try { return selector ? document.querySelector(selector) : null; } catch { return null; }
  }

  // An answer with nothing to show: gone for a shopper; in the theme editor the merchant is
  // told why the block is empty, rather than left with blank space they cannot tell from a
  // broken block. (A failed request says nothing of fit: it just goes.)
  function empty(node) {
    if (!design) return gone(node);
    const root = node.shadowRoot || node.attachShadow({ mode: "open" });
    const style = el("style");
    style.textContent =
      ":host{display:block;height:" + HEIGHT + "px;overflow:hidden}" +
      "p{box-sizing:border-box;height:100%;margin:0;padding:16px;display:flex;align-items:center;" +
      "justify-content:center;text-align:center;border:1px dashed currentColor;opacity:.7;font:inherit}";
    root.replaceChildren(style, el("p", { role: "note" }, data.textEmptyInEditor || ""));
  }

  function gone(node) {
    if (node.getBoundingClientRect().top >= window.innerHeight) {
      node.remove();
    } else {
      node.style.visibility = "hidden";
      node.setAttribute("aria-hidden", "true");
    }
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const name in attrs || {}) node.setAttribute(name, attrs[name]);
    if (text != null) node.textContent = text;
    return node;
  }

  function colour(value, fallback) {
    return /^#[0-9a-f]{6}$/i.test(value || "") ? value : fallback;
  }

  function render(body) {
    const root = slot.attachShadow({ mode: "open" });
    // Everything but the image takes about 140 px (padding, heading, title, price): a slot
    // reserved shorter than 310 px gets a smaller image, not a clipped price line.
    const IMAGE = Math.max(60, Math.min(170, HEIGHT - 140));
    const style = el("style");
    style.textContent =
      // The reserved height, at least: text a shopper made larger (200 %, WCAG 1.4.4) grows
      // the row rather than being cut off.
      ":host{display:block;min-height:" + HEIGHT + "px;contain:layout paint;" +
      "--fg:" + colour(body.text_color, "#1a1a1a") + ";--bg:" + colour(body.background_color, "#fff") +
      ";--ac:" + colour(body.accent_color, "#1a1a1a") + "}" +
      "section{box-sizing:border-box;min-height:" + HEIGHT + "px;padding:12px 16px;background:var(--bg);color:var(--fg);font:inherit}" +
      ".top{display:flex;align-items:center;justify-content:space-between;height:32px}" +
      // On a narrow screen the heading gives way (an ellipsis); the partner label and the
      // arrows keep their size.
      ".top>div{display:flex;align-items:baseline;gap:8px;min-width:0}.nav,p{flex:none}" +
      "h2{font-size:1.1em;margin:0;color:var(--fg);white-space:nowrap;overflow:hidden;text-overflow:ellipsis}p{margin:0}" +
      // The row scrolls, so it clips: its 4 px of padding hold a link's focus ring.
      "ul{list-style:none;margin:4px -4px 0;padding:4px;scroll-padding:0 4px;display:grid;grid-auto-flow:column;" +
      "grid-auto-columns:minmax(150px,170px);gap:12px;overflow-x:auto;scroll-snap-type:x mandatory;scrollbar-width:none}" +
      "li{scroll-snap-align:start}@media(prefers-reduced-motion:no-preference){ul{scroll-behavior:smooth}}" +
      "a{display:block;color:var(--fg);text-decoration:none;border-radius:8px;outline-offset:2px}" +
      "a:focus-visible{outline:2px solid var(--ac)}" +
      "img,.ph{display:block;width:100%;height:" + IMAGE + "px;object-fit:cover;border-radius:8px;background:#f2f2f2}" +
      ".t{display:-webkit-box;-webkit-line-clamp:2;-webkit-box-orient:vertical;overflow:hidden;margin-top:6px;font-weight:600;line-height:1.3;height:2.6em}" +
      ".m{font-size:.85em;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}" +
      "button{border:1px solid var(--ac);background:var(--bg);color:var(--ac);border-radius:50%;width:32px;height:32px;cursor:pointer;margin-inline-start:6px}" +
      ".nav[hidden]{display:none}";
    const labelId = "il-title";
    const section = el("section", { "aria-labelledby": labelId });
    const top = el("div", { "class": "top" });
    const heading = el("div");
    heading.appendChild(el("h2", { id: labelId }, body.title || text.heading));
    // Shoppers are told these are other stores' products (paid placements).
    if (body.items.some(function (item) { return item.slot === "partner"; })) {
      heading.appendChild(el("p", { "class": "m", "data-partner-label": "" }, text.fromPartners));
    }
    top.appendChild(heading);
    const list = el("ul", { role: "list", "aria-label": text.list });
    const nav = el("div", { "class": "nav" });
    const prev = el("button", { type: "button", "aria-label": text.previous }, "\u2039");
    const next = el("button", { type: "button", "aria-label": text.next }, "\u203a");
    // Right to left (Arabic, Hebrew: the theme's dir="rtl" reaches the shadow root), the row
    // starts on the right and goes on to the left; the arrows' glyphs mirror by themselves.
    const ahead = function () { return getComputedStyle(list).direction === "rtl" ? -1 : 1; };
    // Smooth unless the shopper asked for reduced motion (the stylesheet's scroll-behavior).
    prev.onclick = function () { list.scrollBy(-ahead() * list.clientWidth, 0); };
    next.onclick = function () { list.scrollBy(ahead() * list.clientWidth, 0); };
    nav.appendChild(prev);
    nav.appendChild(next);
    top.appendChild(nav);
    body.items.forEach(function (item) {
      const link = el("a", { "data-slot": item.slot });
      if (!item.token) {
        link.href = home + "products/" + encodeURIComponent(item.handle);
      } else if (!design) {
        link.href = proxy + "/click?t=" + encodeURIComponent(item.token);
        // Paid placements: search engines must not read them as endorsements.
        link.rel = "sponsored noopener";
      }
      // Requested at the size shown (170 px, 340 px on high-density screens), not full size.
      const img = item.image_url
        ? el("img", { src: item.image_url, alt: "", loading: "lazy", decoding: "async", width: "170", height: "170" })
        : el("span", { "class": "ph", "aria-hidden": "true" });
      if (item.image_srcset) img.setAttribute("srcset", item.image_srcset);
      link.appendChild(img);
      link.appendChild(el("span", { "class": "t" }, item.title));
      link.appendChild(el("span", { "class": "m" }, item.price + (item.store_name ? " \u00b7 " + item.store_name : "")));
      const li = el("li");
      li.appendChild(link);
      list.appendChild(li);
    });
    list.addEventListener("keydown", function (event) {
      const links = list.querySelectorAll("a");
      const at = Array.prototype.indexOf.call(links, root.activeElement);
      const step = (event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0) * ahead();
      if (!step || at < 0) return;
      event.preventDefault();
      const target = links[Math.max(0, Math.min(links.length - 1, at + step))];
      target.focus();
      target.scrollIntoView({ block: "nearest", inline: "nearest" });
    });
    section.appendChild(top);
    section.appendChild(list);
    root.appendChild(style);
    root.appendChild(section);
    // The arrows show whenever the row is wider than its place, on any screen (a mouse has
    // no other way along a row without a scrollbar).
    const fits = function () { nav.hidden = list.scrollWidth <= list.clientWidth + 1; };
    fits();
    if ("ResizeObserver" in window) {
      const resized = new ResizeObserver(fits);
      resized.observe(list);
      stops.push(function () { resized.disconnect(); });
    }
    // For the theme's own performance tools (and ours): when the row was on the page.
    if (window.performance && performance.mark) performance.mark("interlayer:rendered");
    const view = watch(design ? null : body.impression);
    // A shopper who clicks a partner before the row's second on screen is up has seen it:
    // report the view first (a billable click needs it), then follow the link.
    list.addEventListener("click", function (event) {
      const link = event.target.closest("a[data-slot=partner]");
      if (!link || view.reported()) return;
      const sameTab = event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey;
      const sent = view.report();
      if (!sameTab) return;
      event.preventDefault();
      const go = function () { window.location.assign(link.href); };
      Promise.race([sent, new Promise(function (resolve) { setTimeout(resolve, 400); })]).then(go, go);
    });
  }

  function watch(impression) {
    let reported = !impression;
    let timer = null;
    let observer = null;
    function report() {
      if (reported) return Promise.resolve();
      reported = true;
      if (timer) clearTimeout(timer);
      if (observer) observer.disconnect();
      return fetch(proxy + "/impression", { method: "POST", body: impression, keepalive: true })
        .catch(function () { /* the click itself still goes through; it bills nothing */ });
    }
    if (!reported && "IntersectionObserver" in window) {
      observer = new IntersectionObserver(function (entries) {
        // The newest entry (several can arrive at once); a row hidden is not seen.
        const visible = entries[entries.length - 1].intersectionRatio >= 0.5 &&
          getComputedStyle(slot).visibility !== "hidden";
        if (visible && !timer) {
          timer = setTimeout(report, 1000);
        } else if (!visible && timer) {
          clearTimeout(timer);
          timer = null;
        }
      }, { threshold: [0, 0.5, 1] });
      observer.observe(slot);
      stops.push(function () { clearTimeout(timer); observer.disconnect(); });
    }
    return { report: report, reported: function () { return reported; } };
  }
})();
