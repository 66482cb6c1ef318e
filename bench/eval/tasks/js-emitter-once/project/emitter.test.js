import test from "node:test";
import assert from "node:assert/strict";

import { Emitter } from "./emitter.js";

test("on and emit", () => {
  const emitter = new Emitter();
  const seen = [];
  emitter.on("data", (value) => seen.push(value));
  assert.equal(emitter.emit("data", 1), true);
  assert.equal(emitter.emit("other", 2), false);
  assert.deepEqual(seen, [1]);
});

test("listeners run in order", () => {
  const emitter = new Emitter();
  const seen = [];
  emitter.on("x", () => seen.push("a")).on("x", () => seen.push("b"));
  emitter.emit("x");
  assert.deepEqual(seen, ["a", "b"]);
  assert.equal(emitter.listenerCount("x"), 2);
});

test("a listener must be a function", () => {
  assert.throws(() => new Emitter().on("x", 5), TypeError);
});
