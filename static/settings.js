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
  // Only the latest of one kind of request is answered: an earlier one answering late (a
  // period chosen before, a poll crossed by a refresh, a search typed on) gets null.
  const latestOnly = () => {
    let asked = 0;
    return async (path) => {
      const mine = ++asked;
      const r = await api(path);
      return mine === asked ? r : null;
    };
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
  // Times in the shop's time zone, as its figures are counted (and named, as the page's
  // other times are): not the browser's.
  const shopZone = $("#install-state")?.dataset.timeZone || undefined;
  const when = (iso) => {
    if (!iso) return "never";
    try {
      return new Date(iso).toLocaleString(undefined, { timeZone: shopZone, timeZoneName: "short" });
    } catch {
      return new Date(iso).toLocaleString();
    }
  };
  // What a part of the page was last drawn from: an answer like it is not drawn again (the
  // page looks again every few seconds while the catalog syncs). A failure forgets it.
  const drawn = {};
  const alreadyDrawn = (part, answer) => {
    const text = JSON.stringify(answer);
    if (drawn[part] === text) return true;
    drawn[part] = text;
    return false;
  };

  // App Bridge UI (title bar, save bar, toasts, resource picker) is drawn by the admin.
  const toast = (message, isError) => shopify.toast.show(message, { isError: Boolean(isError) });

  // --- set-up guide ------------------------------------------------------------------------
  const STATUS = {
    done: ["Done", "success"],
    todo: ["To do", "warning"],
    unknown: ["Not checked", "info"],
    skipped: ["Not needed", "neutral"],
    optional: ["Optional", "info"],
    waiting: ["Waiting", "info"],
  };
  const stepAction = (step, current) => {
    const { label, url, command } = step.action;
    const button = el("s-button", { variant: current ? "primary" : "secondary", "data-action": command || "link" }, label);
    if (command === "sync") {
      button.addEventListener("click", () => syncNow(button));
    } else if (url.startsWith("#")) {
      // A place on this page: scrolled to, and the keyboard's focus taken there.
      button.addEventListener("click", () => {
        const target = $(url);
        if (!target) return;
        const still = matchMedia("(prefers-reduced-motion: reduce)").matches;
        target.scrollIntoView({ behavior: still ? "auto" : "smooth" });
        if (!target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
        target.focus({ preventScroll: true });
      });
    } else {
      // Theme editor deep links and the storefront open in the admin's own window.
      button.setAttribute("href", url);
      button.setAttribute("target", "_top");
    }
    return button;
  };
  const renderSetup = (guide) => {
    const list = $("#setup-steps");
    list.textContent = "";
    const done = guide.steps.filter((s) => ["done", "skipped", "optional"].includes(s.status)).length;
    $("#setup-progress").textContent = guide.complete
      ? "Interlayer is live on your store."
      : `${done} of ${guide.steps.length} steps done`;
    for (const step of guide.steps) {
      const current = step.key === guide.current;
      const item = el("li", { class: "setup-step", "data-step": step.key, "data-status": step.status });
      if (current) item.setAttribute("aria-current", "step");
      const [label, tone] = STATUS[step.status];
      const head = el("s-stack", { direction: "inline", gap: "small" });
      head.appendChild(el("s-badge", { tone }, label));
      head.appendChild(el("s-text", { type: "strong" }, step.title));
      item.appendChild(head);
      item.appendChild(el("s-paragraph", { tone: "subdued" }, step.detail));
      if (step.action && step.status !== "done") item.appendChild(stepAction(step, current));
      list.appendChild(item);
    }
  };
  // Drawn again only when it changed (alreadyDrawn), or a keyboard user's focus on a step's
  // button would go back to the top of the page at each look.
  const loadSetup = async (refresh) => {
    const r = await api(`api/setup${refresh ? "?refresh=1" : ""}`);
    if (!r.ok) {
      delete drawn.setup;
      $("#setup-progress").textContent = r.body.error || "The set-up guide could not be loaded.";
      return;
    }
    if (alreadyDrawn("setup", r.body)) return;
    renderSetup(r.body);
  };
  $("#setup-refresh").addEventListener("click", () => loadSetup(true));
  // Back from the theme editor (another tab or window): read the live theme again.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") loadSetup(true);
  });

  // --- overview ----------------------------------------------------------------------
  // While the catalog syncs (the first open after install, "Sync catalog now") the page
  // looks again every few seconds: it must not stay on "Queued" once the sync is done.
  const SYNC_POLL_MS = 4000;
  const SYNC_POLL_MAX_MS = 60000;
  let syncPoll;
  let wasSyncing = false;
  let failedLooks = 0;
  const lookAgain = (ms) => {
    clearTimeout(syncPoll);
    syncPoll = setTimeout(() => { loadOverview(); loadSetup(false); }, ms);
  };
  const followSync = (syncing) => {
    clearTimeout(syncPoll);
    failedLooks = 0;
    if (syncing) {
      lookAgain(SYNC_POLL_MS);
    } else if (wasSyncing) {
      // Done: the lists read from the catalog are read again.
      listOptedOut();
      fillPreviewChoices($("#preview-search").value);
      loadPreview();
    }
    wasSyncing = syncing;
  };
  // Likewise the overview and the embed status, whose button may have the focus. The
  // overview is no live region: while a sync runs its counts change at every look, and a
  // screen reader would read all of it out every few seconds. What a listener needs, the
  // catalog's state when it changes ("Catalog: Synced, 120 products"), is said apart.
  let spokenState;
  const sayCatalogState = (c) => {
    if (spokenState !== undefined && spokenState !== c.state) {
      $("#catalog-status").textContent = `Catalog: ${c.state}, ${c.synced} ${c.synced === 1 ? "product" : "products"}`;
    }
    spokenState = c.state;
  };
  const overviewApi = latestOnly();
  const loadOverview = async () => {
    const r = await overviewApi("api/overview");
    if (!r) return;
    const box = $("#overview");
    if (!r.ok) {
      delete drawn.overview;
      // A look that fails while the catalog syncs (a dropped connection, a deploy) is tried
      // again, less often each time: the page must not stay on the error once it is over.
      if (wasSyncing) lookAgain(Math.min(SYNC_POLL_MS * 2 ** failedLooks++, SYNC_POLL_MAX_MS));
      return showError(box, r.body.error || "The overview could not be loaded.");
    }
    const c = r.body.catalog;
    followSync(c.syncing);
    sayCatalogState(c);
    if (alreadyDrawn("overview", r.body)) return;
    box.textContent = "";
    // Banners go under the metrics, across the section: not into the grid of tiles.
    const notices = $("#overview-notices");
    notices.textContent = "";
    box.appendChild(metric("Catalog", c.state));
    box.appendChild(metric("Products synced", String(c.synced)));
    box.appendChild(metric("Eligible", String(c.eligible)));
    box.appendChild(metric("Embedded", String(c.embedded)));
    box.appendChild(metric("Last sync", when(c.last_finished)));
    box.appendChild(metric("Credit balance", r.body.balance.toFixed(2)));
    const parts = r.body.balance_parts;
    if (parts) {
      notices.appendChild(el("s-paragraph", { tone: "subdued", id: "balance-parts" },
        `Since you joined: ${parts.given.toFixed(2)} given (starter grant and credits from the Interlayer team), ${parts.earned.toFixed(2)} earned, ${Math.abs(parts.spent).toFixed(2)} spent.`));
    }
    if (r.body.balance_exhausted) {
      notices.appendChild(el("s-banner", { tone: "warning", id: "balance-notice", heading: "Partner stores are not showing your products" },
        `Your balance is below the ${r.body.spend_per_click.toFixed(2)} credit a click on one of your products costs, so the network shows them on no partner store for now. Your widget, while it is on, keeps showing partners' products and earning credits for the clicks it sends them; your products come back as soon as your balance can pay for a click.`));
    }
    if (r.body.held_for_review > 0 || r.body.under_review) {
      box.appendChild(metric("Held for review", r.body.held_for_review.toFixed(2)));
      const held = r.body.held_for_review > 0
        ? "Some of your store's earnings are held for review"
        : "Your store's new earnings will be held for review";
      notices.appendChild(el("s-banner", { tone: "warning", id: "review-notice" }, `${held}: all new ones while its click-through rate is far above the network's, or those from a few addresses that made most of its clicks. A held click charges the partner nothing until the Interlayer team releases it (you are paid then, and the partner charged, if it can pay); a voided one is never charged nor paid. Reviews usually take two business days.`));
    }
    if (c.last_error) {
      // Only while the last read stands failed: a read that succeeds takes it away.
      notices.appendChild(el("s-banner", { tone: "critical", id: "sync-failed", heading: "Your last catalog sync did not finish" },
        `It stopped ${when(c.last_error_at)}. ${c.last_error} Interlayer tries again on its own within about half an hour, from where it stopped; “Sync catalog now” tries at once. Your products already synced stay in the network meanwhile.`));
    }
    const shared = c.eligible - c.opted_out;
    $("#product-summary").textContent = `${shared} of your ${c.eligible} eligible ${c.eligible === 1 ? "product" : "products"} ${shared === 1 ? "is" : "are"} shared with the network; ${c.opted_out} kept off.`;
    const embed = r.body.app_embed;
    if (alreadyDrawn("embed", [embed, r.body.widget_enabled])) return;
    const status = $("#embed-status");
    status.textContent = "";
    const theme = embed.theme ? ` (${embed.theme})` : "";
    if ((embed.enabled || embed.block_added) && !r.body.widget_enabled) {
      // The theme loads the widget, but the merchant switched it off here: nothing shows.
      status.appendChild(el("s-text", { tone: "caution" }, `Your theme${theme} loads the widget, but it is switched off below ("Show the widget on my store"): shoppers see no partner products.`));
    } else if (embed.enabled) {
      status.appendChild(el("s-text", { tone: "success" }, `The widget is switched on in your theme${theme}.`));
    } else if (embed.block_added) {
      // The block alone shows the widget on product pages, as the set-up guide counts it.
      status.appendChild(el("s-text", { tone: "success" }, `The widget is on your product pages: the Partner product row block is in your theme${theme}. Turn on the Partner products app embed too to show it on other pages. `));
      status.appendChild(el("s-button", { href: embed.activate_url, target: "_top", id: "activate-embed", variant: "tertiary" }, "Turn on the app embed"));
    } else {
      status.appendChild(el("s-text", null, embed.enabled === false ? "The widget is not switched on in your live theme. " : "We could not check your theme. "));
      status.appendChild(el("s-button", { href: embed.activate_url, target: "_top", id: "activate-embed" }, "Turn it on in the theme editor"));
    }
  };
  const syncNow = async (button) => {
    button.setAttribute("loading", "");
    const r = await api("api/sync", { method: "POST", body: "{}" });
    button.removeAttribute("loading");
    if (!r.ok) {
      toast(r.body.error || "The sync could not be started. Try again.", true);
      return;
    }
    toast(r.body.queued ? "Catalog sync queued" : "Your catalog is already syncing");
    loadOverview(); // and again every few seconds until the sync is done
    loadSetup(false);
  };
  $("#sync-now").addEventListener("click", () => syncNow($("#sync-now")));

  // --- stats and the chart -------------------------------------------------------------
  // Amounts are in the store's currency; partners' sales converted at reference rates, in
  // the reference currency where the store's own has none (sentCurrency); a partner
  // product's price in its own.
  let currency = "USD";
  let sentCurrency = "USD";
  const money = (amount, code = currency) => {
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency: code }).format(Number(amount));
    } catch {
      return `${Number(amount).toFixed(2)} ${code}`.trim();
    }
  };
  // Orders counted but not in an amount beside them (no rate to convert them with).
  const leftOut = (n, why) => (n ? ` (${n === 1 ? "1 order" : `${n} orders`} ${why} not included)` : "");
  const drawChart = (days) => {
    const svg = $("#chart");
    const NS = "http://www.w3.org/2000/svg";
    const W = 680, H = 220, PAD = 24;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    // Net credits go below zero on days a store spent more than it earned: the zero line
    // rises to make room for them.
    let top = 1, low = 0;
    for (const d of days) {
      top = Math.max(top, d.sent_billable, d.received_billable, d.earned - d.spent, d.orders_received);
      low = Math.min(low, d.earned - d.spent);
    }
    const step = (W - 2 * PAD) / days.length;
    const bar = Math.max(1, step / 2 - 1);
    const y = (v) => H - PAD - ((v - low) / (top - low)) * (H - 2 * PAD);
    const zero = y(0);
    const shape = (tag, attrs) => {
      const node = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
      svg.appendChild(node);
      return node;
    };
    shape("line", { x1: PAD, x2: W - PAD, y1: zero, y2: zero, class: "axis" });
    const points = [];
    // Each mark says what it is when pointed at (an SVG <title>).
    const titled = (node, text) => {
      node.appendChild(document.createElementNS(NS, "title")).textContent = text;
    };
    days.forEach((d, i) => {
      const x = PAD + i * step;
      if (d.sent_billable) titled(shape("rect", { x, y: y(d.sent_billable), width: bar, height: zero - y(d.sent_billable), class: "bar bar--sent" }), `${d.date}: ${d.sent_billable} billable clicks you sent`);
      if (d.received_billable) titled(shape("rect", { x: x + bar, y: y(d.received_billable), width: bar, height: zero - y(d.received_billable), class: "bar bar--received" }), `${d.date}: ${d.received_billable} billable clicks you received`);
      points.push(`${(x + bar).toFixed(1)},${y(d.earned - d.spent).toFixed(1)}`);
      if (d.orders_received) titled(shape("circle", { cx: (x + bar).toFixed(1), cy: y(d.orders_received).toFixed(1), r: 4, class: "dot--orders" }), `${d.date}: ${d.orders_received} orders the network brought you`);
    });
    // What a screen reader says of the chart: the period's figures in words (the legend
    // and the note on days follow as its description).
    const sum = (key) => days.reduce((total, d) => total + d[key], 0);
    const net = Math.round((sum("earned") - sum("spent")) * 100) / 100;
    svg.setAttribute("aria-label", `Daily chart from ${days[0].date} to ${days[days.length - 1].date}: `
      + `${sum("sent_billable")} billable clicks you sent, ${sum("received_billable")} you received, `
      + `net credits ${net}, ${sum("orders_received")} orders the network brought you.`);
    shape("polyline", { points: points.join(" "), class: "line--net" });
    shape("text", { x: PAD, y: PAD - 8, class: "axis-label" }).textContent = String(top);
    // The lowest value goes just above the plot's bottom edge: below it, the first day's date.
    if (low < 0) shape("text", { x: PAD, y: H - PAD - 4, class: "axis-label" }).textContent = String(Math.round(low * 100) / 100);
    shape("text", { x: PAD, y: H - 6, class: "axis-label" }).textContent = days[0].date;
    shape("text", { x: W - PAD, y: H - 6, class: "axis-label", "text-anchor": "end" }).textContent = days[days.length - 1].date;
  };
  // One row across the table: "none yet", or why there is nothing to show.
  const partnersMessage = (text, attrs) => {
    const body = $("#partner-table tbody");
    body.textContent = "";
    const tr = el("tr");
    tr.appendChild(el("td", { colspan: "6", ...attrs }, text));
    body.appendChild(tr);
  };
  const fillPartners = (rows) => {
    const body = $("#partner-table tbody");
    body.textContent = "";
    if (!rows.length) return partnersMessage("No exchange yet.", { class: "muted" });
    for (const row of rows) {
      const tr = el("tr");
      tr.appendChild(el("th", { scope: "row" }, row.name));
      tr.appendChild(el("td", null, String(row.clicks_sent)));
      tr.appendChild(el("td", null, String(row.clicks_received)));
      tr.appendChild(el("td", null, Number(row.net).toFixed(2)));
      tr.appendChild(el("td", { "data-orders": "received" }, `${row.orders_received} (${money(row.revenue_received)})`));
      tr.appendChild(el("td", { "data-orders": "sent" }, `${row.orders_sent} (${money(row.revenue_sent, sentCurrency)})`));
      body.appendChild(tr);
    }
  };
  // A year takes longer to answer than a week: only the period asked last is drawn.
  const statsApi = latestOnly();
  const loadStats = async () => {
    const r = await statsApi(`api/stats?days=${$("#period").value}`);
    if (!r) return;
    const box = $("#totals");
    if (!r.ok) {
      // Nothing of another period stays up, and a failure never reads as "no exchange".
      const chart = $("#chart");
      while (chart.firstChild) chart.removeChild(chart.firstChild);
      partnersMessage("Your exchange with each partner could not be loaded.", { class: "error-message" });
      return showError(box, r.body.error || "The statistics could not be loaded.");
    }
    const t = r.body.totals;
    box.textContent = "";
    box.appendChild(metric("Viewable impressions", String(t.impressions)));
    box.appendChild(metric("Clicks sent (billable)", `${t.sent} (${t.sent_billable})`));
    box.appendChild(metric("Clicks received (billable)", `${t.received} (${t.received_billable})`));
    box.appendChild(metric("Click-through rate (billable)", t.ctr == null ? "—" : `${(t.ctr * 100).toFixed(1)}%`));
    box.appendChild(metric("Credits earned", t.earned.toFixed(2)));
    box.appendChild(metric("Credits spent", t.spent.toFixed(2)));
    currency = r.body.currency;
    sentCurrency = r.body.sent_currency || currency;
    const unpriced = r.body.orders_sent_unpriced || 0;
    box.appendChild(metric("Orders the network brought you", String(t.orders_received)));
    const formerCurrency = r.body.orders_received_unpriced || 0;
    box.appendChild(metric("Revenue the network brought you", money(t.revenue_received)
      + leftOut(formerCurrency, "in your store's former currency")));
    box.appendChild(metric("Orders you brought partners", String(t.orders_sent)));
    box.appendChild(metric("Revenue you brought partners", money(t.revenue_sent, sentCurrency)
      + leftOut(unpriced, "in a currency without a reference rate")));
    box.appendChild(metric("Partner revenue per 1,000 impressions", t.revenue_sent_per_1000_impressions == null ? "—" : money(t.revenue_sent_per_1000_impressions, sentCurrency)));
    $("#chart-days").textContent = `Days run midnight to midnight in your store's time zone (${r.body.time_zone}).`;
    drawChart(r.body.days);
    fillPartners(r.body.partners);
  };
  $("#period").addEventListener("change", loadStats);

  // --- the settings form: save bar, pickers, saving ----------------------------------------
  const form = $("#settings-form");
  const field = (name) => form.querySelector(`[name="${name}"]`);
  const chipValues = (name) =>
    Array.from(document.querySelectorAll(`[data-picker="${name}"] .chips li`), (li) => li.dataset.value);
  const currentSettings = () => ({
    enabled: field("enabled").checked,
    avoid_competitors: field("avoid_competitors").checked,
    title: field("title").value,
    items: Number(field("items").value),
    own_share: Number(field("own_share").value),
    accent_color: field("accent_color").value,
    text_color: field("text_color").value,
    background_color: field("background_color").value,
    blocked_stores: chipValues("blocked_stores"),
    excluded_categories: chipValues("excluded_categories"),
  });
  let saved = null; // the settings as the server has them
  let barShown = false;
  const checkDirty = () => {
    if (saved == null) return;
    const dirty = JSON.stringify(currentSettings()) !== JSON.stringify(saved);
    if (dirty === barShown) return;
    barShown = dirty;
    if (dirty) shopify.saveBar.show("settings-save-bar");
    else shopify.saveBar.hide("settings-save-bar");
  };
  form.addEventListener("input", checkDirty);
  form.addEventListener("change", checkDirty);

  document.querySelectorAll("[data-picker]").forEach((picker) => {
    const search = $("s-search-field", picker);
    const suggestions = $(".suggestions", picker);
    const chips = $(".chips", picker);
    // A chip is a list item holding a button that removes it: reachable and announced by
    // keyboard and screen reader alike ("Remove …"). The page may label a saved value
    // otherwise (a category no longer in the network); Discard keeps that label.
    const labels = new Map(Array.from(chips.children, (li) => [li.dataset.value, li.textContent]));
    const chip = (value) => {
      const label = labels.get(value) || value;
      const item = el("li", { "data-value": value });
      item.appendChild(el("button", { type: "button", class: "chip", "aria-label": `Remove ${label}`, title: "Remove" }, label));
      return item;
    };
    const addChip = (value) => {
      if (!chips.querySelector(`[data-value="${CSS.escape(value)}"]`)) chips.appendChild(chip(value));
      checkDirty();
    };
    picker.setChips = (values) => {
      chips.textContent = "";
      values.forEach((value) => chips.appendChild(chip(value)));
    };
    chips.addEventListener("click", (event) => {
      const button = event.target.closest("button.chip");
      if (!button) return;
      const item = button.closest("li");
      // Focus stays in the list: on the next chip, else the search field.
      const next = item.nextElementSibling || item.previousElementSibling;
      item.remove();
      (next ? $("button", next) : search).focus();
      checkDirty();
    });
    // Said aloud (and shown) after each search: how many match, or that none does.
    const status = el("p", { class: "picker-status", "aria-live": "polite" });
    suggestions.after(status);
    const close = () => { suggestions.textContent = ""; status.textContent = ""; };
    const options = () => Array.from(suggestions.querySelectorAll("[role=option]"));
    // The list is one stop for Tab (its first option); the arrow keys move within it.
    const moveTo = (option) => {
      options().forEach((o) => { o.tabIndex = -1; o.setAttribute("aria-selected", "false"); });
      option.tabIndex = 0;
      option.setAttribute("aria-selected", "true");
      option.focus();
    };
    let timer;
    // Not part of the settings themselves: a search box must not mark the form changed.
    search.addEventListener("input", (event) => {
      event.stopPropagation();
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const r = await api(`${picker.dataset.source}?q=${encodeURIComponent(search.value)}`);
        close();
        if (!r.ok) {
          suggestions.appendChild(el("li", { class: "error-message", role: "alert" }, r.body.error || "Search failed."));
          return;
        }
        const chosen = new Set(chipValues(picker.dataset.picker));
        const items = (r.body.partners || r.body.categories || []).filter(
          (item) => !chosen.has(picker.dataset.key ? item[picker.dataset.key] : item));
        for (const item of items) {
          const value = picker.dataset.key ? item[picker.dataset.key] : item;
          const label = picker.dataset.label ? `${item[picker.dataset.label]} (${value})` : item;
          const option = el("li", { role: "option", tabindex: "-1", "aria-selected": "false", "data-value": value }, label);
          // The chosen option goes with the list: focus returns to the search field, not <body>.
          option.addEventListener("click", () => { addChip(value); close(); search.value = ""; search.focus(); });
          suggestions.appendChild(option);
        }
        if (items.length) options()[0].tabIndex = 0;
        status.textContent = search.value.trim() === "" ? ""
          : items.length ? `${items.length} match${items.length === 1 ? "" : "es"}: arrow keys to go through them, Enter to choose.`
          : "No matches.";
      }, 150);
    });
    search.addEventListener("change", (event) => event.stopPropagation());
    search.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown" && options().length) {
        event.preventDefault();
        moveTo(options()[0]);
      } else if (event.key === "Escape") {
        close();
      }
    });
    suggestions.addEventListener("keydown", (event) => {
      const list = options();
      const at = list.indexOf(event.target);
      if (at < 0) return;
      const to = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: list.length - 1 }[event.key];
      if (to !== undefined) {
        event.preventDefault();
        if (to < 0) search.focus();
        else moveTo(list[Math.min(to, list.length - 1)]);
      } else if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        event.target.click();
      } else if (event.key === "Escape") {
        close();
        search.focus();
      }
    });
  });

  const clearErrors = () => {
    form.querySelectorAll("[error]").forEach((node) => node.removeAttribute("error"));
    $("[data-errors-inline]").textContent = "";
    $("#save-errors").hidden = true;
  };
  const showErrors = (errors) => {
    const list = $("[data-errors-inline]");
    for (const [name, messages] of Object.entries(errors)) {
      const text = messages.map((e) => e.message).join(" ");
      const input = name === "__all__" ? null : field(name);
      if (input) input.setAttribute("error", text);
      const label = input ? input.getAttribute("label") : name === "__all__" ? "" : name.replace(/_/g, " ");
      list.appendChild(el("li", { class: "error-message", "data-field": name }, label ? `${label}: ${text}` : text));
    }
    $("#save-errors").hidden = false;
  };
  const saveButton = $("#save-settings");
  const save = async () => {
    clearErrors();
    const payload = currentSettings();
    saveButton.setAttribute("loading", "");
    const r = await api("api/settings", { method: "POST", body: JSON.stringify(payload) });
    saveButton.removeAttribute("loading");
    if (r.ok) {
      saved = payload;
      checkDirty();
      toast("Settings saved. Your storefront shows the change within a minute.");
      loadPreview();
      loadSetup(false);
      loadOverview(); // the widget switched on or off
      return;
    }
    showErrors(r.body.errors || { __all__: [{ message: r.body.error || "Could not save." }] });
    toast(r.body.errors ? "Not saved: please fix the highlighted fields." : "Not saved.", true);
  };
  const discard = () => {
    clearErrors();
    for (const name of ["enabled", "avoid_competitors"]) field(name).checked = saved[name];
    for (const name of ["title", "items", "own_share", "accent_color", "text_color", "background_color"]) {
      field(name).value = String(saved[name]);
    }
    document.querySelectorAll("[data-picker]").forEach((picker) => picker.setChips(saved[picker.dataset.picker]));
    checkDirty();
  };
  saveButton.addEventListener("click", save);
  $("#discard-settings").addEventListener("click", discard);
  form.addEventListener("submit", (event) => { event.preventDefault(); save(); });

  // --- products kept off the network (Shopify's resource picker) ----------------------------
  const productId = (gid) => Number(String(gid).split("/").pop());
  let optedOut = [];
  let waitingOptOuts = new Set(); // chosen before the sync read them (not kept off yet)
  const listOptedOut = async () => {
    const list = $("#opted-out-list");
    const r = await api("api/products?opted_out=1");
    if (!r.ok) return showError(list, r.body.error || "Your products could not be loaded.");
    optedOut = r.body.products.map((p) => p.shopify_id);
    waitingOptOuts = new Set(r.body.products.filter((p) => p.not_synced).map((p) => p.shopify_id));
    list.textContent = "";
    for (const p of r.body.products) {
      const row = el("li", { "data-product": String(p.shopify_id) });
      const name = p.title || `Product ${p.shopify_id}`;
      row.appendChild(el("s-text", null, `${name} `));
      // Chosen before the catalog sync read it: kept off as soon as it does.
      if (p.not_synced) row.appendChild(el("s-text", { tone: "neutral", class: "muted" }, "(not synced yet: kept off once it is) "));
      const back = el("s-button", { variant: "tertiary", accessibilityLabel: `Return ${name} to the network` }, "Return to the network");
      back.addEventListener("click", async () => {
        back.setAttribute("loading", "");
        const done = await setOptedOut([p.shopify_id], false);
        back.removeAttribute("loading");
        if (!done) return;
        toast(`${name} is back in the network`);
        listOptedOut();
        loadOverview();
      });
      row.appendChild(back);
      list.appendChild(row);
    }
    if (!list.children.length) list.appendChild(el("li", { class: "muted" }, "None: all your eligible products are in the network."));
  };
  // Resolves to the answer ({changed, not_synced}), or null once the failure is shown.
  // ``titles`` (id -> title, from the picker) name products not synced yet meanwhile.
  // Sent in parts the API takes (up to 500 ids each): a picker selection may be larger.
  const OPT_OUT_BATCH = 500;
  const setOptedOut = async (ids, opted, titles) => {
    const answer = { changed: 0, not_synced: [] };
    for (let start = 0; start < ids.length; start += OPT_OUT_BATCH) {
      const part = ids.slice(start, start + OPT_OUT_BATCH);
      const named = Object.fromEntries(part.filter((id) => titles && String(id) in titles).map((id) => [String(id), titles[String(id)]]));
      const r = await api("api/products/opt-out", { method: "POST", body: JSON.stringify({ product_ids: part, opted_out: opted, titles: named }) });
      if (!r.ok) {
        // Parts sent before stay saved: say how many, and the list shows them.
        const sent = start ? `${start} of ${ids.length} saved; the rest not: ` : "";
        toast(`${sent}${r.body.error || "Not saved."}`, true);
        return null;
      }
      answer.changed += r.body.changed || 0;
      answer.not_synced.push(...(r.body.not_synced || []));
    }
    return answer;
  };
  $("#choose-opt-outs").addEventListener("click", async () => {
    const selection = await shopify.resourcePicker({
      type: "product",
      multiple: true,
      selectionIds: optedOut.map((id) => ({ id: `gid://shopify/Product/${id}` })),
    });
    if (!selection) return; // the merchant cancelled
    const chosen = new Set(selection.map((p) => productId(p.id)));
    const titles = Object.fromEntries(selection.map((p) => [String(productId(p.id)), String(p.title || "")]));
    const before = new Set(optedOut);
    const add = [...chosen].filter((id) => !before.has(id));
    const remove = optedOut.filter((id) => !chosen.has(id));
    let ok = true;
    // Products Interlayer has not read yet (chosen now, or before): kept off once it has.
    const waiting = new Set([...chosen].filter((id) => waitingOptOuts.has(id)));
    if (add.length) {
      const done = await setOptedOut(add, true, titles);
      ok = Boolean(done);
      if (done) done.not_synced.forEach((id) => waiting.add(id));
    }
    if (remove.length) ok = Boolean(await setOptedOut(remove, false)) && ok;
    const notSynced = waiting.size;
    const kept = chosen.size - notSynced;
    if (ok && (add.length || remove.length)) {
      const now = `${kept} ${kept === 1 ? "product" : "products"} kept off the network`;
      const later = notSynced === 1 ? "1 more not synced yet, kept off once it is" : `${notSynced} more not synced yet, kept off once they are`;
      toast(notSynced ? `${now}; ${later}` : now);
    }
    listOptedOut();
    loadOverview();
  });

  // --- the preview -------------------------------------------------------------------------
  const loadPreview = async () => {
    const chosen = $("#preview-product").value;
    const list = $("#preview");
    const r = await api(`api/preview${chosen ? `?product_id=${chosen}` : ""}`);
    if (!r.ok) return showError(list, r.body.error || "The preview could not be loaded.");
    list.textContent = "";
    // As the widget shows each item (its image, name, store and price), with why it was
    // chosen folded away: the ranking's own words, for a merchant who wants them.
    for (const item of r.body.items) {
      const li = el("li", { class: `preview-item preview-item--${item.slot}` });
      li.appendChild(item.image_url
        ? el("img", { src: item.image_url, alt: "", width: "64", height: "64", loading: "lazy" })
        : el("span", { class: "preview-image" }));
      const text = el("div", null);
      text.appendChild(el("strong", null, item.title));
      text.appendChild(el("span", { class: "muted" }, `${item.slot === "own" ? "Your product" : item.store_name || item.shop} · ${money(item.price, item.currency)}`));
      const why = el("details", null);
      why.appendChild(el("summary", null, "Why this product"));
      why.appendChild(el("span", { class: "muted" }, item.reason));
      text.appendChild(why);
      li.appendChild(text);
      list.appendChild(li);
    }
    if (!list.children.length) list.appendChild(el("li", { class: "muted" }, "Nothing relevant to show on this page."));
  };
  // The first 30 eligible products by title, or those the search finds: any page can be
  // previewed, however large the catalog.
  const previewChoicesApi = latestOnly();
  const fillPreviewChoices = async (query = "") => {
    const r = await previewChoicesApi(`api/products?eligible=1&q=${encodeURIComponent(query)}`);
    if (!r || !r.ok) return; // a failure shows in the product list above
    const select = $("#preview-product");
    // "Home page" and the product being previewed stay; the rest is the search's answer.
    for (const option of select.querySelectorAll("s-option:not([value=''])")) {
      if (option.getAttribute("value") !== select.value) option.remove();
    }
    for (const p of r.body.products) {
      if (String(p.shopify_id) === select.value) continue;
      select.appendChild(el("s-option", { value: String(p.shopify_id) }, p.title));
    }
  };
  $("#preview-product").addEventListener("change", loadPreview);
  let previewSearch;
  // Not a setting: the search box must not mark the form changed.
  $("#preview-search").addEventListener("input", (event) => {
    event.stopPropagation();
    clearTimeout(previewSearch);
    previewSearch = setTimeout(() => fillPreviewChoices($("#preview-search").value), 150);
  });
  $("#preview-search").addEventListener("change", (event) => event.stopPropagation());

  // The fields are Polaris elements: read the saved state once they are defined.
  const FIELDS = ["s-checkbox", "s-text-field", "s-number-field", "s-color-field"];
  Promise.all(FIELDS.map((name) => customElements.whenDefined(name))).then(() => {
    saved = currentSettings();
  });
  loadSetup(false);
  loadOverview();
  loadStats();
  listOptedOut();
  loadPreview();
  fillPreviewChoices();
})();
