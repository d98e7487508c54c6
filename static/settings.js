/* The settings page. Every request is a same-origin fetch: App Bridge adds the ID token
   as "Authorization: Bearer", so there are no cookies. All data goes in as text. */
(function () {
  "use strict";

  function $(selector, root) { return (root || document).querySelector(selector); }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var name in attrs || {}) node.setAttribute(name, attrs[name]);
    if (text != null) node.textContent = text;
    return node;
  }
  function api(path, options) {
    options = options || {};
    if (options.body) options.headers = { "Content-Type": "application/json" };
    return fetch(path, options).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, status: response.status, body: body }; });
    });
  }
  function metric(label, value) {
    var box = el("div", { "class": "metric" });
    box.appendChild(el("span", { "class": "metric-label" }, label));
    box.appendChild(el("strong", { "class": "metric-value" }, value));
    return box;
  }
  function when(iso) { return iso ? new Date(iso).toLocaleString() : "never"; }

  // --- overview ----------------------------------------------------------------------
  function loadOverview() {
    api("api/overview").then(function (r) {
      if (!r.ok) return;
      var c = r.body.catalog, box = $("#overview");
      box.textContent = "";
      box.appendChild(metric("Catalog", c.state));
      box.appendChild(metric("Products synced", String(c.synced)));
      box.appendChild(metric("Eligible", String(c.eligible)));
      box.appendChild(metric("Embedded", String(c.embedded)));
      box.appendChild(metric("Last sync", when(c.last_finished)));
      box.appendChild(metric("Credit balance", r.body.balance.toFixed(2)));
      if (c.last_error) box.appendChild(el("p", { "class": "error-message" }, "Last error (" + when(c.last_error_at) + "): " + c.last_error));
      var embed = r.body.app_embed, status = $("#embed-status");
      status.textContent = "";
      if (embed.enabled) {
        status.appendChild(el("span", { "class": "status--active" }, "The widget is switched on in your theme" + (embed.theme ? " (" + embed.theme + ")" : "") + "."));
      } else {
        status.appendChild(el("span", null, embed.enabled === false ? "The widget is not switched on in your live theme. " : "We could not check your theme. "));
        status.appendChild(el("a", { href: embed.activate_url, target: "_top", "class": "button", id: "activate-embed" }, "Turn it on in the theme editor"));
      }
    });
  }
  $("#sync-now").addEventListener("click", function () {
    api("api/sync", { method: "POST", body: "{}" }).then(function () {
      $("#sync-now").textContent = "Sync queued";
      setTimeout(loadOverview, 2000);
    });
  });

  // --- stats and the chart -------------------------------------------------------------
  function loadStats() {
    api("api/stats?days=" + $("#period").value).then(function (r) {
      if (!r.ok) return;
      var t = r.body.totals, box = $("#totals");
      box.textContent = "";
      box.appendChild(metric("Viewable impressions", String(t.impressions)));
      box.appendChild(metric("Clicks sent (billable)", t.sent + " (" + t.sent_billable + ")"));
      box.appendChild(metric("Clicks received (billable)", t.received + " (" + t.received_billable + ")"));
      box.appendChild(metric("Click-through rate", t.ctr == null ? "—" : (t.ctr * 100).toFixed(1) + "%"));
      box.appendChild(metric("Credits earned", t.earned.toFixed(2)));
      box.appendChild(metric("Credits spent", t.spent.toFixed(2)));
      drawChart(r.body.days);
      fillPartners(r.body.partners);
    });
  }
  function drawChart(days) {
    var svg = $("#chart"), NS = "http://www.w3.org/2000/svg", W = 680, H = 220, PAD = 24;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var top = 1;
    days.forEach(function (d) { top = Math.max(top, d.sent_billable, d.received_billable, Math.abs(d.earned - d.spent)); });
    var step = (W - 2 * PAD) / days.length, bar = Math.max(1, step / 2 - 1);
    function y(v) { return H - PAD - (v / top) * (H - 2 * PAD); }
    function shape(tag, attrs) { var n = document.createElementNS(NS, tag); for (var k in attrs) n.setAttribute(k, attrs[k]); svg.appendChild(n); return n; }
    shape("line", { x1: PAD, x2: W - PAD, y1: H - PAD, y2: H - PAD, "class": "axis" });
    var points = [];
    days.forEach(function (d, i) {
      var x = PAD + i * step;
      if (d.sent_billable) shape("rect", { x: x, y: y(d.sent_billable), width: bar, height: H - PAD - y(d.sent_billable), "class": "bar bar--sent" });
      if (d.received_billable) shape("rect", { x: x + bar, y: y(d.received_billable), width: bar, height: H - PAD - y(d.received_billable), "class": "bar bar--received" });
      points.push((x + bar).toFixed(1) + "," + y(Math.max(0, d.earned - d.spent)).toFixed(1));
    });
    shape("polyline", { points: points.join(" "), "class": "line--net" });
    var label = shape("text", { x: PAD, y: PAD - 8, "class": "axis-label" }); label.textContent = String(top);
    var first = shape("text", { x: PAD, y: H - 6, "class": "axis-label" }); first.textContent = days[0].date;
    var last = shape("text", { x: W - PAD, y: H - 6, "class": "axis-label", "text-anchor": "end" }); last.textContent = days[days.length - 1].date;
  }
  function fillPartners(rows) {
    var body = $("#partner-table tbody");
    body.textContent = "";
    if (!rows.length) { var tr = el("tr"); tr.appendChild(el("td", { colspan: "4", "class": "muted" }, "No exchange yet.")); body.appendChild(tr); return; }
    rows.forEach(function (row) {
      var tr = el("tr");
      tr.appendChild(el("th", { scope: "row" }, row.name));
      tr.appendChild(el("td", null, String(row.clicks_sent)));
      tr.appendChild(el("td", null, String(row.clicks_received)));
      tr.appendChild(el("td", null, Number(row.net).toFixed(2)));
      body.appendChild(tr);
    });
  }
  $("#period").addEventListener("change", loadStats);

  // --- pickers (blocked partners, excluded categories) ---------------------------------
  document.querySelectorAll("[data-picker]").forEach(function (picker) {
    var input = $("input", picker), suggestions = $(".suggestions", picker), chips = $(".chips", picker);
    function addChip(value) {
      if (chips.querySelector('[data-value="' + CSS.escape(value) + '"]')) return;
      chips.appendChild(el("li", { "data-value": value }, value));
    }
    chips.addEventListener("click", function (event) {
      if (event.target.matches("li")) event.target.remove();
    });
    chips.querySelectorAll("li").forEach(function (chip) { chip.title = "Remove"; });
    var timer;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        api(picker.dataset.source + "?q=" + encodeURIComponent(input.value)).then(function (r) {
          suggestions.textContent = "";
          var items = r.body.partners || r.body.categories || [];
          items.forEach(function (item) {
            var value = picker.dataset.key ? item[picker.dataset.key] : item;
            var label = picker.dataset.label ? item[picker.dataset.label] + " (" + value + ")" : item;
            var option = el("li", { role: "option", tabindex: "0", "data-value": value }, label);
            option.addEventListener("click", function () { addChip(value); suggestions.textContent = ""; input.value = ""; });
            option.addEventListener("keydown", function (e) { if (e.key === "Enter") option.click(); });
            suggestions.appendChild(option);
          });
        });
      }, 150);
    });
  });
  function chipValues(name) {
    return Array.prototype.map.call(document.querySelectorAll('[data-picker="' + name + '"] .chips li'), function (li) { return li.dataset.value; });
  }

  // --- saving ---------------------------------------------------------------------------
  $("#settings-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var form = event.target, status = $("#save-status");
    document.querySelectorAll(".field-error").forEach(function (p) { p.textContent = ""; });
    $("[data-errors-inline]").textContent = "";
    var payload = {
      enabled: form.enabled.checked,
      avoid_competitors: form.avoid_competitors.checked,
      title: form.title.value,
      items: Number(form.items.value),
      own_share: Number(form.own_share.value),
      accent_color: form.accent_color.value,
      text_color: form.text_color.value,
      background_color: form.background_color.value,
      blocked_stores: chipValues("blocked_stores"),
      excluded_categories: chipValues("excluded_categories")
    };
    status.textContent = "Saving…";
    api("api/settings", { method: "POST", body: JSON.stringify(payload) }).then(function (r) {
      if (r.ok) { status.textContent = "Saved. Your storefront shows the change within a minute."; loadPreview(); return; }
      status.textContent = "Please fix the errors above.";
      var errors = r.body.errors || { __all__: [{ message: r.body.error || "Could not save." }] };
      Object.keys(errors).forEach(function (field) {
        var slot = $('[data-error-for="' + field + '"]') || $("[data-errors-inline]");
        var text = errors[field].map(function (e) { return e.message; }).join(" ");
        slot.appendChild(el("span", { "class": "error-message", "data-field": field }, (slot.dataset.errorFor ? "" : field + ": ") + text + " "));
      });
    });
  });

  // --- products in the network and the preview -----------------------------------------
  function searchProducts(query, then) {
    api("api/products?q=" + encodeURIComponent(query || "")).then(function (r) { then(r.body.products || []); });
  }
  function listProducts() {
    searchProducts($("#product-search").value, function (products) {
      var list = $("#product-list");
      list.textContent = "";
      products.forEach(function (p) {
        var row = el("li");
        var box = el("input", { type: "checkbox", "data-product": String(p.shopify_id) });
        box.checked = !p.opted_out;
        box.disabled = !p.eligible;
        box.addEventListener("change", function () {
          api("api/products/opt-out", { method: "POST", body: JSON.stringify({ product_ids: [p.shopify_id], opted_out: !box.checked }) });
        });
        var label = el("label");
        label.appendChild(box);
        label.appendChild(document.createTextNode(" " + p.title + (p.eligible ? "" : " — not eligible (" + p.ineligible_reason + ")")));
        row.appendChild(label);
        list.appendChild(row);
      });
    });
  }
  var productTimer;
  $("#product-search").addEventListener("input", function () { clearTimeout(productTimer); productTimer = setTimeout(listProducts, 200); });

  function loadPreview() {
    var chosen = $("#preview-product").value;
    api("api/preview" + (chosen ? "?product_id=" + chosen : "")).then(function (r) {
      var list = $("#preview");
      list.textContent = "";
      (r.body.items || []).forEach(function (item) {
        var li = el("li", { "class": "preview-item preview-item--" + item.slot });
        li.appendChild(el("strong", null, item.title));
        li.appendChild(el("span", null, " — " + (item.slot === "own" ? "your product" : item.store_name || item.shop)));
        li.appendChild(el("span", { "class": "muted" }, " · " + item.reason));
        list.appendChild(li);
      });
      if (!list.children.length) list.appendChild(el("li", { "class": "muted" }, "Nothing relevant to show on this page."));
    });
  }
  searchProducts("", function (products) {
    var select = $("#preview-product");
    products.filter(function (p) { return p.eligible; }).forEach(function (p) {
      select.appendChild(el("option", { value: String(p.shopify_id) }, p.title));
    });
  });
  $("#preview-product").addEventListener("change", loadPreview);

  loadOverview();
  loadStats();
  listProducts();
  loadPreview();
})();
