import test from "node:test";
import assert from "node:assert/strict";

import { formatBytes } from "./bytes.js";

test("bytes are whole numbers", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1), "1 B");
  assert.equal(formatBytes(999), "999 B");
});

test("SI units step by 1000", () => {
  assert.equal(formatBytes(1000), "1.0 kB");
  assert.equal(formatBytes(1500), "1.5 kB");
  assert.equal(formatBytes(999999), "1000.0 kB");
  assert.equal(formatBytes(1000000), "1.0 MB");
  assert.equal(formatBytes(2500000000), "2.5 GB");
  assert.equal(formatBytes(1e12), "1.0 TB");
});

test("binary units step by 1024", () => {
  assert.equal(formatBytes(1000, { binary: true }), "1000 B");
  assert.equal(formatBytes(1023, { binary: true }), "1023 B");
  assert.equal(formatBytes(1024, { binary: true }), "1.0 KiB");
  assert.equal(formatBytes(1536, { binary: true }), "1.5 KiB");
  assert.equal(formatBytes(10240, { binary: true }), "10.0 KiB");
  assert.equal(formatBytes(1048576, { binary: true }), "1.0 MiB");
  assert.equal(formatBytes(1024 ** 4, { binary: true }), "1.0 TiB");
});

test("the largest unit is TB", () => {
  assert.equal(formatBytes(1.5e15), "1500.0 TB");
  assert.equal(formatBytes(1024 ** 5, { binary: true }), "1024.0 TiB");
});

test("decimals", () => {
  assert.equal(formatBytes(1536, { binary: true, decimals: 2 }), "1.50 KiB");
  assert.equal(formatBytes(1234567, { decimals: 3 }), "1.235 MB");
  assert.equal(formatBytes(1500, { decimals: 0 }), "2 kB");
  assert.equal(formatBytes(999, { decimals: 2 }), "999 B");
});

test("negative sizes", () => {
  assert.equal(formatBytes(-1500), "-1.5 kB");
  assert.equal(formatBytes(-5), "-5 B");
  assert.equal(formatBytes(-1024, { binary: true }), "-1.0 KiB");
});

test("invalid input", () => {
  for (const bad of [NaN, Infinity, -Infinity, "1000", null, undefined, 10n]) {
    assert.throws(() => formatBytes(bad), TypeError);
  }
});
