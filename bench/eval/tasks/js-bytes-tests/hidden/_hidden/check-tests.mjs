// The hidden check of a "write tests" task: the project's tests must pass against the reference module and fail
// against every mutant of it (a plausible slip each) in _hidden/mutants/.
//
//     node _hidden/check-tests.mjs bytes.js
//
// Each run is on a copy of the checkout (without _hidden/, .git and node_modules) whose module is replaced, so the
// model's own copy of the module does not matter. Exit 0 only when the tests pass on the reference and catch every
// mutant.

import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const checkout = dirname(here);
const skipped = new Set(["_hidden", ".git", "node_modules"]);

function runTests(moduleName, moduleSource) {
  const scratch = mkdtempSync(join(tmpdir(), "check-tests-"));
  try {
    const copy = join(scratch, "project");
    cpSync(checkout, copy, {
      recursive: true,
      verbatimSymlinks: true,
      filter: (path) => !(path !== checkout && dirname(path) === checkout && skipped.has(basename(path))),
    });
    writeFileSync(join(copy, moduleName), moduleSource);
    const done = spawnSync(process.execPath, ["--test", "--test-reporter=tap"], {
      cwd: copy, encoding: "utf8", timeout: 60000,
    });
    const output = `${done.stdout ?? ""}${done.stderr ?? ""}`;
    const tests = Number(/^# tests (\d+)/m.exec(output)?.[1] ?? 0);
    return { status: done.status, tests, output };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

const moduleName = process.argv[2];
const reference = runTests(moduleName, readFileSync(join(here, "reference.js"), "utf8"));
if (reference.tests === 0) {
  console.log("FAIL: the project has no tests node --test finds");
  process.exit(1);
}
if (reference.status !== 0) {
  console.log(`FAIL: the tests do not pass against the real ${moduleName} (exit ${reference.status}):`);
  console.log(reference.output.slice(-3000));
  process.exit(1);
}
const survivors = [];
for (const name of readdirSync(join(here, "mutants")).sort()) {
  const run = runTests(moduleName, readFileSync(join(here, "mutants", name), "utf8"));
  const caught = run.status !== 0;
  console.log(`mutant ${name}: ${caught ? "caught" : "MISSED"}`);
  if (!caught) {
    survivors.push(name);
  }
}
if (survivors.length > 0) {
  console.log(`FAIL: the tests miss ${survivors.length} mutant(s): ${survivors.join(", ")}`);
  process.exit(1);
}
console.log("PASS: the tests pass on the real module and catch every mutant");
