import test from "node:test";
import assert from "node:assert/strict";

import { Emitter } from "./emitter.js";

test("off removes a listener and returns the emitter", () => {
  const emitter = new Emitter();
  const seen = [];
  const listener = (value) => seen.push(value);
  emitter.on("data", listener);
  assert.equal(emitter.off("data", listener), emitter);
  assert.equal(emitter.emit("data", 1), false);
  assert.deepEqual(seen, []);
  assert.equal(emitter.listenerCount("data"), 0);
});

test("off removes only the most recent registration", () => {
  const emitter = new Emitter();
  const seen = [];
  const a = () => seen.push("a");
  const b = () => seen.push("b");
  emitter.on("x", a).on("x", b).on("x", a);
  emitter.off("x", a);
  emitter.emit("x");
  assert.deepEqual(seen, ["a", "b"]);
  assert.equal(emitter.listenerCount("x"), 2);
});

test("off for an unknown listener or event changes nothing", () => {
  const emitter = new Emitter();
  const seen = [];
  emitter.on("x", () => seen.push(1));
  assert.equal(emitter.off("x", () => {}), emitter);
  assert.equal(emitter.off("nothing", () => {}), emitter);
  emitter.emit("x");
  assert.deepEqual(seen, [1]);
});

test("off of one event leaves other events alone", () => {
  const emitter = new Emitter();
  const seen = [];
  const listener = (value) => seen.push(value);
  emitter.on("a", listener).on("b", listener);
  emitter.off("a", listener);
  emitter.emit("a", 1);
  emitter.emit("b", 2);
  assert.deepEqual(seen, [2]);
});

test("once runs a listener once, with the arguments and the emitter as this", () => {
  const emitter = new Emitter();
  const calls = [];
  const returned = emitter.once("data", function (x, y) {
    calls.push([this, x, y]);
  });
  assert.equal(returned, emitter);
  assert.equal(emitter.listenerCount("data"), 1);
  assert.equal(emitter.emit("data", 1, 2), true);
  assert.equal(emitter.emit("data", 3, 4), false);
  assert.equal(calls.length, 1);
  assert.equal(calls[0][0], emitter);
  assert.deepEqual(calls[0].slice(1), [1, 2]);
  assert.equal(emitter.listenerCount("data"), 0);
});

test("once is removed before it runs: an emit from inside does not run it again", () => {
  const emitter = new Emitter();
  let count = 0;
  emitter.once("x", () => {
    count += 1;
    emitter.emit("x");
  });
  emitter.emit("x");
  assert.equal(count, 1);
});

test("once and on together keep their order", () => {
  const emitter = new Emitter();
  const seen = [];
  emitter.on("x", () => seen.push("on1"));
  emitter.once("x", () => seen.push("once"));
  emitter.on("x", () => seen.push("on2"));
  emitter.emit("x");
  emitter.emit("x");
  assert.deepEqual(seen, ["on1", "once", "on2", "on1", "on2"]);
});

test("off with the original listener removes a once-listener before it ran", () => {
  const emitter = new Emitter();
  let count = 0;
  const listener = () => {
    count += 1;
  };
  emitter.once("x", listener);
  emitter.off("x", listener);
  assert.equal(emitter.listenerCount("x"), 0);
  assert.equal(emitter.emit("x"), false);
  assert.equal(count, 0);
});

test("the same function twice with once runs twice on one emit, then never", () => {
  const emitter = new Emitter();
  let count = 0;
  const listener = () => {
    count += 1;
  };
  emitter.once("x", listener).once("x", listener);
  assert.equal(emitter.listenerCount("x"), 2);
  emitter.emit("x");
  emitter.emit("x");
  assert.equal(count, 2);
});

test("once needs a function", () => {
  assert.throws(() => new Emitter().once("x", "nope"), TypeError);
});
