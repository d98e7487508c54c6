/* A stand-in for the theme editor's side of its preview frame (offline, for the demo and
   tests; loaded only in design mode). When the merchant changes a section (adds a block,
   moves a setting), the editor re-renders it without reloading the page, as Shopify
   documents: shopify:section:unload on the section being replaced, the section's new HTML in
   its place, then shopify:section:load on the new one; both bubble, are not cancelable and
   carry {sectionId}. JavaScript that ran when the page loaded does not run again: the new
   HTML is inserted as markup, so its <script> tags stay inert.
   https://shopify.dev/docs/storefronts/themes/best-practices/editor/integrate-sections-and-blocks */
(function () {
  "use strict";

  function emit(target, type, sectionId) {
    target.dispatchEvent(
      new CustomEvent(type, { bubbles: true, cancelable: false, detail: { sectionId: sectionId } })
    );
  }

  window.ShopifySimThemeEditor = {
    // The section as the theme now has it (the Section Rendering API, in design mode).
    renderSection: function (sectionId) {
      const url = new URL(window.location.href);
      url.searchParams.set("section_id", sectionId);
      return fetch(url)
        .then(function (response) {
          if (!response.ok) throw new Error("no section " + sectionId);
          return response.text();
        })
        .then(function (html) {
          const old = document.getElementById("shopify-section-" + sectionId);
          emit(old, "shopify:section:unload", sectionId);
          const holder = document.createElement("div");
          holder.innerHTML = html;
          const section = holder.firstElementChild;
          old.replaceWith(section);
          emit(section, "shopify:section:load", sectionId);
        });
    },
  };
})();
