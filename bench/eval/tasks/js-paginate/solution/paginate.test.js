import test from "node:test";
import assert from "node:assert/strict";

import { paginate } from "./paginate.js";

const letters = ["a", "b", "c", "d", "e"];

test("the first page", () => {
  assert.deepEqual(paginate(letters, 1, 2).items, ["a", "b"]);
});

test("the last, partial page", () => {
  const result = paginate(letters, 3, 2);
  assert.deepEqual(result.items, ["e"]);
  assert.equal(result.totalPages, 3);
  assert.equal(result.hasNext, false);
});

test("bad arguments", () => {
  assert.throws(() => paginate(letters, 0, 2), RangeError);
});
