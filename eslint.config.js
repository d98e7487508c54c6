// ESLint for the two browser scripts: the storefront widget (theme app extension asset)
// and the embedded settings page. Modern syntax, no silent failures.
const js = require("@eslint/js");
const globals = require("globals");

module.exports = [
  js.configs.recommended,
  {
    files: ["extensions/*/assets/*.js", "static/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "script",
      globals: { ...globals.browser, shopify: "readonly" },
    },
    rules: {
      "no-var": "error",
      "prefer-const": "error",
      eqeqeq: ["error", "smart"],
      "no-empty": "error",
      "no-implicit-globals": "error",
      "no-unused-vars": ["error", { args: "none" }],
    },
  },
  {
    // Web pixel extensions: ES modules run in Shopify's sandbox (a web worker, no DOM).
    files: ["extensions/*/src/*.js"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: globals.worker },
    rules: { "no-var": "error", "prefer-const": "error", eqeqeq: ["error", "smart"], "no-empty": "error" },
  },
  {
    // Build-time scripts that run under Node (theme-check).
    files: ["scripts/*.mjs"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: globals.node },
  },
];
