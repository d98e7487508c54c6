// Shopify's theme-check, as the Shopify CLI and the App Store review run it, on every theme
// app extension under extensions/: the theme-app-extension checks, every offense printed,
// and a non-zero exit on any of them (warnings included: a reviewer reads those too).
//   node scripts/theme_check.mjs
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { themeCheckRun } from "@shopify/theme-check-node";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CONFIG = "theme-check:theme-app-extension";
const SEVERITY = ["error", "warning", "info"];

async function themeExtensions() {
  const found = [];
  const extensions = path.join(ROOT, "extensions");
  for (const entry of await readdir(extensions, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const dir = path.join(extensions, entry.name);
    const toml = await readFile(path.join(dir, "shopify.extension.toml"), "utf8").catch(() => "");
    if (/^\s*type\s*=\s*"theme"\s*$/m.test(toml)) found.push(dir);
  }
  return found;
}

const dirs = await themeExtensions();
if (!dirs.length) {
  console.error("theme-check: no theme app extension found under extensions/");
  process.exit(2);
}
let total = 0;
for (const dir of dirs) {
  // The docs manager would fetch fresher Liquid docs from the network; the package ships
  // the ones it was released with, which is what a pinned version should check against.
  const { offenses } = await themeCheckRun(dir, CONFIG, () => {});
  for (const offense of offenses) {
    const file = path.relative(ROOT, fileURLToPath(offense.uri));
    const line = offense.start.line + 1;
    const level = SEVERITY[offense.severity] ?? "offense";
    console.log(`${file}:${line}: ${level} ${offense.check}: ${offense.message}`);
  }
  total += offenses.length;
  console.log(`theme-check ${path.relative(ROOT, dir)}: ${offenses.length} offense(s)`);
}
process.exit(total ? 1 : 0);
