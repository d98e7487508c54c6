/* The settings page. Every request is a same-origin fetch: App Bridge adds the ID token
   as "Authorization: Bearer", so there are no cookies. All data goes in as text. A request
   that fails says so where its data would have been: never an endless "Loading…". */
(() => {
  "use strict";

  const $ = (selector, root) => (root || document).querySelector(selector);
  const el = (tag, attrs, text) => {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (text != null) node.textContent = text;
    return node;
  };

  /* A JSON call: resolves to {ok, status, body}; a network failure or a non-JSON answer
     resolves with ok=false and a message in body.error, so callers handle one shape. */
  const api = async (path, options = {}) => {
    if (options.body) options.headers = { "Content-Type": "application/json" };
    let response;
    try {
      response = await fetch(path, options);
    } catch {
      return { ok: false, status: 0, body: { error: "Interlayer could not be reached. Check your connection and reload." } };
    }
    let body;
    try {
      body = await response.json();
    } catch {
      body = {};
    }
    if (!response.ok && !body.error && !body.errors) body.error = `Interlayer answered ${response.status}. Please reload the page.`;
    return { ok: response.ok, status: response.status, body };
  };
  const showError = (box, message) => {
    box.textContent = "";
    box.appendChild(el("p", { class: "error-message", role: "alert" }, message));
  };
  const metric = (label, value) => {
    const box = el("div", { class: "metric" });
    box.appendChild(el("span", { class: "metric-label" }, label));
    box.appendChild(el("strong", { class: "metric-value" }, value));
    return box;
  };
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "never");

  // --- overview ----------------------------------------------------------------------
  const loadOverview = async () => {
    const r = await api("api/overview");
    const box = $("#overview");
    if (!r.ok) return showError(box, r.body.error || "The overview could not be loaded.");
    const c = r.body.catalog;
    box.textContent = "";
    box.appendChild(metric("Catalog", c.state));
    box.appendChild(metric("Products synced", String(c.synced)));
    box.appendChild(metric("Eligible", String(c.eligible)));
    box.appendChild(metric("Embedded", String(c.embedded)));
    box.appendChild(metric("Last sync", when(c.last_finished)));
    box.appendChild(metric("Credit balance", r.body.balance.toFixed(2)));
    if (r.body.held_for_review > 0 || r.body.under_review) {
      box.appendChild(metric("Held for review", r.body.held_for_review.toFixed(2)));
      box.appendChild(el("p", { class: "notice", id: "review-notice" }, "Your store's click-through rate is far above the network's, so new earnings are held for review. The Interlayer team releases them, or voids them and refunds the partners, usually within two business days."));
    }
    if (c.last_error) box.appendChild(el("p", { class: "error-message" }, `Last error (${when(c.last_error_at)}): ${c.last_error}`));
    const embed = r.body.app_embed;
    const status = $("#embed-status");
    status.textContent = "";
    if (embed.enabled) {
      status.appendChild(el("span", { class: "status--active" }, `The widget is switched on in your theme${embed.theme ? ` (${embed.theme})` : ""}.`));
    } else {
      status.appendChild(el("span", null, embed.enabled === false ? "The widget is not switched on in your live theme. " : "We could not check your theme. "));
      status.appendChild(el("a", { href: embed.activate_url, target: "_top", class: "button", id: "activate-embed" }, "Turn it on in the theme editor"));
    }
  };
  $("#sync-now").addEventListener("click", async () => {
    const button = $("#sync-now");
    const r = await api("api/sync", { method: "POST", body: "{}" });
    if (!r.ok) {
      button.textContent = "Sync failed — try again";
      return;
    }
    button.textContent = "Sync queued";
    setTimeout(loadOverview, 2000);
  });

  // --- stats and the chart -------------------------------------------------------------
  const drawChart = (days) => {
    const svg = $("#chart");
    const NS = "http://www.w3.org/2000/svg";
    const W = 680, H = 220, PAD = 24;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    let top = 1;
    for (const d of days) top = Math.max(top, d.sent_billable, d.received_billable, Math.abs(d.earned - d.spent));
    const step = (W - 2 * PAD) / days.length;
    const bar = Math.max(1, step / 2 - 1);
    const y = (v) => H - PAD - (v / top) * (H - 2 * PAD);
    const shape = (tag, attrs) => {
      const node = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
      svg.appendChild(node);
      return node;
    };
    shape("line", { x1: PAD, x2: W - PAD, y1: H - PAD, y2: H - PAD, class: "axis" });
    const points = [];
    days.forEach((d, i) => {
      const x = PAD + i * step;
      if (d.sent_billable) shape("rect", { x, y: y(d.sent_billable), width: bar, height: H - PAD - y(d.sent_billable), class: "bar bar--sent" });
      if (d.received_billable) shape("rect", { x: x + bar, y: y(d.received_billable), width: bar, height: H - PAD - y(d.received_billable), class: "bar bar--received" });
      points.push(`${(x + bar).toFixed(1)},${y(Math.max(0, d.earned - d.spent)).toFixed(1)}`);
    });
    shape("polyline", { points: points.join(" "), class: "line--net" });
    shape("text", { x: PAD, y: PAD - 8, class: "axis-label" }).textContent = String(top);
    shape("text", { x: PAD, y: H - 6, class: "axis-label" }).textContent = days[0].date;
    shape("text", { x: W - PAD, y: H - 6, class: "axis-label", "text-anchor": "end" }).textContent = days[days.length - 1].date;
  };
  const fillPartners = (rows) => {
    const body = $("#partner-table tbody");
    body.textContent = "";
    if (!rows.length) {
      const tr = el("tr");
      tr.appendChild(el("td", { colspan: "4", class: "muted" }, "No exchange yet."));
      body.appendChild(tr);
      return;
    }
    for (const row of rows) {
      const tr = el("tr");
      tr.appendChild(el("th", { scope: "row" }, row.name));
      tr.appendChild(el("td", null, String(row.clicks_sent)));
      tr.appendChild(el("td", null, String(row.clicks_received)));
      tr.appendChild(el("td", null, Number(row.net).toFixed(2)));
      body.appendChild(tr);
    }
  };
  const loadStats = async () => {
    const r = await api(`api/stats?days=${$("#period").value}`);
    const box = $("#totals");
    if (!r.ok) return showError(box, r.body.error || "The statistics could not be loaded.");
    const t = r.body.totals;
    box.textContent = "";
    box.appendChild(metric("Viewable impressions", String(t.impressions)));
    box.appendChild(metric("Clicks sent (billable)", `${t.sent} (${t.sent_billable})`));
    box.appendChild(metric("Clicks received (billable)", `${t.received} (${t.received_billable})`));
    box.appendChild(metric("Click-through rate", t.ctr == null ? "—" : `${(t.ctr * 100).toFixed(1)}%`));
    box.appendChild(metric("Credits earned", t.earned.toFixed(2)));
    box.appendChild(metric("Credits spent", t.spent.toFixed(2)));
    drawChart(r.body.days);
    fillPartners(r.body.partners);
  };
  $("#period").addEventListener("change", loadStats);

  // --- pickers (blocked partners, excluded categories) ---------------------------------
  document.querySelectorAll("[data-picker]").forEach((picker) => {
    const input = $("input", picker);
    const suggestions = $(".suggestions", picker);
    const chips = $(".chips", picker);
    const addChip = (value) => {
      if (chips.querySelector(`[data-value="${CSS.escape(value)}"]`)) return;
      chips.appendChild(el("li", { "data-value": value }, value));
    };
    chips.addEventListener("click", (event) => {
      if (event.target.matches("li")) event.target.remove();
    });
    chips.querySelectorAll("li").forEach((chip) => { chip.title = "Remove"; });
    let timer;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const r = await api(`${picker.dataset.source}?q=${encodeURIComponent(input.value)}`);
        suggestions.textContent = "";
        if (!r.ok) {
          suggestions.appendChild(el("li", { class: "error-message", role: "alert" }, r.body.error || "Search failed."));
          return;
        }
        const items = r.body.partners || r.body.categories || [];
        for (const item of items) {
          const value = picker.dataset.key ? item[picker.dataset.key] : item;
          const label = picker.dataset.label ? `${item[picker.dataset.label]} (${value})` : item;
          const option = el("li", { role: "option", tabindex: "0", "data-value": value }, label);
          option.addEventListener("click", () => { addChip(value); suggestions.textContent = ""; input.value = ""; });
          option.addEventListener("keydown", (e) => { if (e.key === "Enter") option.click(); });
          suggestions.appendChild(option);
        }
      }, 150);
    });
  });
  const chipValues = (name) =>
    Array.from(document.querySelectorAll(`[data-picker="${name}"] .chips li`), (li) => li.dataset.value);

  // --- saving ---------------------------------------------------------------------------
  $("#settings-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const status = $("#save-status");
    document.querySelectorAll(".field-error").forEach((p) => { p.textContent = ""; });
    $("[data-errors-inline]").textContent = "";
    const payload = {
      enabled: form.enabled.checked,
      avoid_competitors: form.avoid_competitors.checked,
      title: form.title.value,
      items: Number(form.items.value),
      own_share: Number(form.own_share.value),
      accent_color: form.accent_color.value,
      text_color: form.text_color.value,
      background_color: form.background_color.value,
      blocked_stores: chipValues("blocked_stores"),
      excluded_categories: chipValues("excluded_categories"),
    };
    status.textContent = "Saving…";
    const r = await api("api/settings", { method: "POST", body: JSON.stringify(payload) });
    if (r.ok) {
      status.textContent = "Saved. Your storefront shows the change within a minute.";
      loadPreview();
      return;
    }
    status.textContent = r.body.errors ? "Please fix the errors above." : "Not saved.";
    const errors = r.body.errors || { __all__: [{ message: r.body.error || "Could not save." }] };
    for (const [field, messages] of Object.entries(errors)) {
      const slot = $(`[data-error-for="${field}"]`) || $("[data-errors-inline]");
      const text = messages.map((e) => e.message).join(" ");
      slot.appendChild(el("span", { class: "error-message", "data-field": field }, `${slot.dataset.errorFor ? "" : `${field}: `}${text} `));
    }
  });

  // --- products in the network and the preview -----------------------------------------
  const listProducts = async () => {
    const list = $("#product-list");
    const r = await api(`api/products?q=${encodeURIComponent($("#product-search").value || "")}`);
    if (!r.ok) return showError(list, r.body.error || "Your products could not be loaded.");
    list.textContent = "";
    for (const p of r.body.products) {
      const row = el("li");
      const box = el("input", { type: "checkbox", "data-product": String(p.shopify_id) });
      box.checked = !p.opted_out;
      box.disabled = !p.eligible;
      box.addEventListener("change", async () => {
        const saved = await api("api/products/opt-out", { method: "POST", body: JSON.stringify({ product_ids: [p.shopify_id], opted_out: !box.checked }) });
        if (!saved.ok) {
          box.checked = !box.checked; // the change did not happen: show the real state
          row.appendChild(el("span", { class: "error-message", role: "alert" }, ` ${saved.body.error || "Not saved."}`));
        }
      });
      const label = el("label");
      label.appendChild(box);
      label.appendChild(document.createTextNode(` ${p.title}${p.eligible ? "" : ` — not eligible (${p.ineligible_reason})`}`));
      row.appendChild(label);
      list.appendChild(row);
    }
  };
  let productTimer;
  $("#product-search").addEventListener("input", () => { clearTimeout(productTimer); productTimer = setTimeout(listProducts, 200); });

  const loadPreview = async () => {
    const chosen = $("#preview-product").value;
    const list = $("#preview");
    const r = await api(`api/preview${chosen ? `?product_id=${chosen}` : ""}`);
    if (!r.ok) return showError(list, r.body.error || "The preview could not be loaded.");
    list.textContent = "";
    for (const item of r.body.items) {
      const li = el("li", { class: `preview-item preview-item--${item.slot}` });
      li.appendChild(el("strong", null, item.title));
      li.appendChild(el("span", null, ` — ${item.slot === "own" ? "your product" : item.store_name || item.shop}`));
      li.appendChild(el("span", { class: "muted" }, ` · ${item.reason}`));
      list.appendChild(li);
    }
    if (!list.children.length) list.appendChild(el("li", { class: "muted" }, "Nothing relevant to show on this page."));
  };
  const fillPreviewChoices = async () => {
    const r = await api("api/products?q=");
    if (!r.ok) return;  // the product list above shows the same failure
    const select = $("#preview-product");
    for (const p of r.body.products.filter((product) => product.eligible)) {
      select.appendChild(el("option", { value: String(p.shopify_id) }, p.title));
    }
  };
  $("#preview-product").addEventListener("change", loadPreview);

  loadOverview();
  loadStats();
  listProducts();
  loadPreview();
  fillPreviewChoices();
})();
