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

test("off removes the most recent registration", () => {
  const emitter = new Emitter();
  const seen = [];
  const a = () => seen.push("a");
  emitter.on("x", a).on("x", () => seen.push("b")).on("x", a);
  assert.equal(emitter.off("x", a), emitter);
  emitter.emit("x");
  assert.deepEqual(seen, ["a", "b"]);
});

test("once runs once, even when it emits again", () => {
  const emitter = new Emitter();
  let count = 0;
  emitter.once("x", () => {
    count += 1;
    emitter.emit("x");
  });
  assert.equal(emitter.listenerCount("x"), 1);
  emitter.emit("x");
  emitter.emit("x");
  assert.equal(count, 1);
  assert.equal(emitter.listenerCount("x"), 0);
});

test("off removes a once-listener before it ran", () => {
  const emitter = new Emitter();
  const listener = () => assert.fail("should not run");
  emitter.once("x", listener).off("x", listener);
  assert.equal(emitter.emit("x"), false);
});
