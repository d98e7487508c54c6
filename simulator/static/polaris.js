/* A small stand-in for Shopify's Polaris web components (cdn.shopify.com/shopifycloud/
   polaris.js), served by the local simulator so the embedded pages render and behave offline.
   It defines the elements Interlayer's pages use, in light DOM and with plain styles; the
   real library renders them in shadow DOM with the admin's design. What the app relies on is
   the same in both: the attributes (heading, label, name, value, checked, tone, variant,
   href, disabled…), the properties value/checked, form participation, and "input"/"change"
   and "click" events on the element. Only what the app uses is here. */
(function () {
  "use strict";

  var css = [
    "s-page { display: block; max-width: 1000px; margin: 0 auto; padding: 16px; }",
    "s-page > [slot] { display: none; }", // title bar actions: App Bridge shows them in the admin
    "s-section { display: block; background: #fff; border-radius: 12px; padding: 16px 20px; margin-bottom: 16px;",
    "  box-shadow: 0 1px 0 rgba(26,26,26,.07), inset 0 0 0 1px #e3e3e3; }",
    "s-section s-section { box-shadow: none; padding: 0; margin: 12px 0 0; }",
    "s-section > .s-heading { font-size: 14px; font-weight: 650; margin: 0 0 10px; }",
    "s-stack { display: flex; flex-direction: column; gap: 12px; }",
    "s-stack[direction=inline] { flex-direction: row; flex-wrap: wrap; align-items: center; }",
    "s-stack[justifycontent=space-between] { justify-content: space-between; }",
    "s-stack[gap=small-200], s-stack[gap=small] { gap: 6px; } s-stack[gap=large] { gap: 20px; }",
    "s-grid { display: grid; gap: 12px 24px; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); }",
    "s-box { display: block; } s-box[padding] { padding: 12px; } s-box[background=subdued] { background: #f7f7f7; }",
    "s-box[borderradius] { border-radius: 8px; } s-box[border] { box-shadow: inset 0 0 0 1px #e3e3e3; }",
    "s-text { display: inline; } s-text[tone=subdued] { color: #616161; } s-text[type=strong] { font-weight: 650; }",
    "s-text[tone=critical] { color: #8e1f0b; } s-text[tone=success] { color: #0c5132; }",
    "s-paragraph { display: block; margin: 0 0 8px; } s-paragraph[tone=subdued] { color: #616161; }",
    "s-heading { display: block; font-weight: 650; margin: 0 0 6px; }",
    "s-divider { display: block; border-top: 1px solid #e3e3e3; margin: 12px 0; }",
    "s-button { display: inline-flex; align-items: center; gap: 4px; border-radius: 8px; padding: 6px 12px;",
    "  background: #fff; box-shadow: inset 0 0 0 1px #c9cccf; color: #303030; cursor: pointer; user-select: none; }",
    "s-button[variant=primary] { background: #303030; color: #fff; box-shadow: none; }",
    "s-button[variant=tertiary] { box-shadow: none; background: transparent; }",
    "s-button[tone=critical] { color: #8e1f0b; }",
    "s-button[disabled], s-button[loading] { opacity: .5; cursor: default; }",
    "s-button:focus-visible, s-link:focus-visible { outline: 2px solid #005bd3; outline-offset: 1px; }",
    "s-link { color: #005bd3; text-decoration: underline; cursor: pointer; }",
    "s-badge { display: inline-block; border-radius: 8px; padding: 1px 8px; font-size: 12px; background: #e3e3e3; }",
    "s-badge[tone=success] { background: #cdfee1; color: #0c5132; } s-badge[tone=info] { background: #e0f0ff; }",
    "s-badge[tone=warning] { background: #ffef9d; } s-badge[tone=critical] { background: #fedad9; color: #8e1f0b; }",
    "s-banner { display: block; border-radius: 8px; padding: 10px 12px; margin: 8px 0; background: #eaf4ff; }",
    "s-banner[tone=warning] { background: #fff5ea; } s-banner[tone=critical] { background: #fee9e8; }",
    "s-banner[tone=success] { background: #e6f8ee; } s-banner[hidden] { display: none; }",
    "s-banner > .s-heading { display: block; font-weight: 650; margin-bottom: 4px; }",
    "s-text-field, s-number-field, s-color-field, s-search-field, s-select { display: flex; flex-direction: column; gap: 4px; }",
    "s-checkbox { display: block; } s-checkbox label { display: flex; flex-direction: row; gap: 8px; align-items: center; }",
    ".s-field-input { font: inherit; padding: 6px 8px; border: 1px solid #8a8a8a; border-radius: 8px; }",
    "input[type=color].s-field-input { padding: 2px; height: 34px; width: 100%; }",
    ".s-details { color: #616161; font-size: 12px; } .s-error { color: #8e1f0b; font-size: 12px; }",
    "s-option { display: none; } s-spinner::after { content: '…'; }"
  ].join("\n");
  var style = document.createElement("style");
  style.textContent = css;
  document.head.appendChild(style);

  var el = function (tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text != null) node.textContent = text;
    return node;
  };
  var define = function (name, impl) { if (!customElements.get(name)) customElements.define(name, impl); };
  var uid = 0;

  // --- structure ------------------------------------------------------------------------
  define("s-page", class extends HTMLElement {}); // the heading is App Bridge's title bar
  define("s-section", class extends HTMLElement {
    connectedCallback() {
      if (this._rendered || !this.getAttribute("heading")) return;
      this._rendered = true;
      var depth = 2, up = this.parentElement;
      while (up) { if (up.localName === "s-section") depth++; up = up.parentElement; }
      this.insertBefore(el("h" + Math.min(depth, 6), { class: "s-heading" }, this.getAttribute("heading")), this.firstChild);
    }
  });
  define("s-banner", class extends HTMLElement {
    connectedCallback() {
      if (this._rendered) return;
      this._rendered = true;
      this.setAttribute("role", this.getAttribute("tone") === "critical" ? "alert" : "status");
      if (this.getAttribute("heading")) this.insertBefore(el("strong", { class: "s-heading" }, this.getAttribute("heading")), this.firstChild);
    }
  });
  ["s-stack", "s-grid", "s-box", "s-text", "s-paragraph", "s-heading", "s-divider", "s-badge", "s-spinner", "s-option"]
    .forEach(function (name) { define(name, class extends HTMLElement {}); });

  // --- actions ---------------------------------------------------------------------------
  class Pressable extends HTMLElement {
    constructor() {
      super();
      // Registered before any listener of the app's, so a disabled control does nothing.
      this.addEventListener("click", (event) => {
        if (this.hasAttribute("disabled") || this.hasAttribute("loading")) {
          event.stopImmediatePropagation();
          event.preventDefault();
          return;
        }
        var href = this.getAttribute("href");
        if (href) { window.open(href, this.getAttribute("target") || "_self"); return; }
        if (this.getAttribute("type") === "submit") {
          var form = this.closest("form");
          if (form) form.requestSubmit();
        }
      });
      this.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); this.click(); }
      });
    }
    connectedCallback() {
      if (!this.hasAttribute("tabindex")) this.setAttribute("tabindex", "0");
      if (!this.hasAttribute("role")) this.setAttribute("role", this.localName === "s-link" ? "link" : "button");
    }
    get disabled() { return this.hasAttribute("disabled"); }
    set disabled(value) { this.toggleAttribute("disabled", !!value); }
    get loading() { return this.hasAttribute("loading"); }
    set loading(value) { this.toggleAttribute("loading", !!value); }
  }
  define("s-button", class extends Pressable {});
  define("s-link", class extends Pressable {});

  // --- form fields: form-associated, value/checked properties, native input inside -------
  class Field extends HTMLElement {
    static get formAssociated() { return true; }
    constructor() {
      super();
      this._internals = this.attachInternals ? this.attachInternals() : null;
    }
    connectedCallback() {
      if (this._input) return;
      var id = "s-field-" + (++uid);
      this._label = el("label", { for: id }, this.getAttribute("label") || "");
      this._input = this.createInput();
      this._input.id = id;
      this._input.classList.add("s-field-input");
      ["placeholder", "min", "max", "step", "maxlength", "required", "autocomplete"].forEach((name) => {
        if (this.hasAttribute(name)) this._input.setAttribute(name, this.getAttribute(name));
      });
      if (this.hasAttribute("labelaccessibilityvisibility")) this._label.hidden = true;
      this._input.setAttribute("aria-label", this.getAttribute("label") || "");
      this.appendChild(this._label);
      this.appendChild(this._input);
      this._details = el("span", { class: "s-details" }, this.getAttribute("details"));
      if (this.getAttribute("details")) this.appendChild(this._details);
      this._error = el("span", { class: "s-error", role: "alert" });
      this.appendChild(this._error);
      this._initial = this.getAttribute("value") || "";
      if (this._pending != null) this._input.value = this._pending;
      else this._input.value = this._initial;
      this._input.addEventListener("input", () => this._sync());
      this._input.addEventListener("change", () => this._sync());
      this._sync();
    }
    createInput() { return el("input", { type: "text" }); }
    _sync() { if (this._internals) this._internals.setFormValue(this.value); }
    get value() { return this._input ? this._input.value : (this._pending != null ? this._pending : this.getAttribute("value") || ""); }
    set value(v) { if (this._input) { this._input.value = v; this._sync(); } else this._pending = String(v); }
    get name() { return this.getAttribute("name"); }
    static get observedAttributes() { return ["error", "label", "details"]; }
    attributeChangedCallback(name, _old, value) {
      if (!this._input) return;
      if (name === "error") { this._error.textContent = value || ""; this._input.setAttribute("aria-invalid", value ? "true" : "false"); }
      if (name === "label") this._label.textContent = value || "";
      if (name === "details") this._details.textContent = value || "";
    }
    formResetCallback() { this.value = this._initial; }
    focus() { if (this._input) this._input.focus(); }
  }
  define("s-text-field", class extends Field {});
  define("s-search-field", class extends Field { createInput() { return el("input", { type: "search" }); } });
  define("s-number-field", class extends Field { createInput() { return el("input", { type: "number" }); } });
  define("s-color-field", class extends Field { createInput() { return el("input", { type: "color" }); } });

  define("s-checkbox", class extends Field {
    connectedCallback() {
      if (this._input) return;
      this._input = el("input", { type: "checkbox" });
      this._initialChecked = this.hasAttribute("checked");
      this._input.checked = this._pendingChecked != null ? this._pendingChecked : this._initialChecked;
      this._label = el("label");
      this._label.appendChild(this._input);
      this._label.appendChild(document.createTextNode(" " + (this.getAttribute("label") || "")));
      this.appendChild(this._label);
      this._details = el("span", { class: "s-details" }, this.getAttribute("details"));
      if (this.getAttribute("details")) this.appendChild(this._details);
      this._error = el("span", { class: "s-error", role: "alert" });
      this.appendChild(this._error);
      this._input.addEventListener("change", () => this._sync());
      this._sync();
    }
    _sync() { if (this._internals) this._internals.setFormValue(this.checked ? (this.getAttribute("value") || "on") : null); }
    get checked() { return this._input ? this._input.checked : (this._pendingChecked != null ? this._pendingChecked : this.hasAttribute("checked")); }
    set checked(v) { if (this._input) { this._input.checked = !!v; this._sync(); } else this._pendingChecked = !!v; }
    get value() { return this.getAttribute("value") || "on"; }
    set value(v) { this.setAttribute("value", v); }
    formResetCallback() { this.checked = this._initialChecked; }
  });

  // s-select: a native <select> built from its <s-option value="…">label</s-option> children.
  define("s-select", class extends Field {
    createInput() { return el("select"); }
    connectedCallback() {
      if (this._input) return;
      super.connectedCallback();
      var remember = () => { this._chosen = this._input.value; };
      this._input.addEventListener("input", remember);
      this._input.addEventListener("change", remember);
      this._build();
      // Rebuild when the s-option children change, not when the native options do.
      new MutationObserver((records) => {
        if (records.some((r) => r.target !== this._input && !this._input.contains(r.target))) this._build();
      }).observe(this, { childList: true, subtree: true, characterData: true });
    }
    _build() {
      if (this._chosen == null) this._chosen = this.getAttribute("value");
      var options = Array.prototype.filter.call(this.children, (child) => child.localName === "s-option");
      this._input.textContent = "";
      options.forEach((option) => {
        var native = el("option", { value: option.getAttribute("value") || "" }, option.textContent);
        if (this._chosen == null && option.hasAttribute("selected")) this._chosen = native.value;
        this._input.appendChild(native);
      });
      if (options.some((o) => (o.getAttribute("value") || "") === this._chosen)) this._input.value = this._chosen;
      this._sync();
    }
    get value() { return this._input ? this._input.value : (this._chosen || ""); }
    set value(v) {
      this._chosen = String(v);
      if (this._input) { this._input.value = this._chosen; this._sync(); }
    }
  });
})();
