import test from "node:test";
import assert from "node:assert/strict";

import { paginate } from "./paginate.js";

const letters = ["a", "b", "c", "d", "e"];

test("every page of five items, two a page", () => {
  assert.deepEqual(paginate(letters, 1, 2), {
    items: ["a", "b"], page: 1, perPage: 2, totalPages: 3, hasPrev: false, hasNext: true,
  });
  assert.deepEqual(paginate(letters, 2, 2), {
    items: ["c", "d"], page: 2, perPage: 2, totalPages: 3, hasPrev: true, hasNext: true,
  });
  assert.deepEqual(paginate(letters, 3, 2), {
    items: ["e"], page: 3, perPage: 2, totalPages: 3, hasPrev: true, hasNext: false,
  });
});

test("an exact number of pages", () => {
  const result = paginate(["a", "b", "c", "d"], 2, 2);
  assert.deepEqual(result.items, ["c", "d"]);
  assert.equal(result.totalPages, 2);
  assert.equal(result.hasNext, false);
});

test("one page holding everything", () => {
  const result = paginate(letters, 1, 10);
  assert.deepEqual(result.items, letters);
  assert.equal(result.totalPages, 1);
  assert.equal(result.hasPrev, false);
  assert.equal(result.hasNext, false);
});

test("perPage defaults to 10", () => {
  const numbers = Array.from({ length: 25 }, (_, i) => i);
  const result = paginate(numbers, 3);
  assert.deepEqual(result.items, [20, 21, 22, 23, 24]);
  assert.equal(result.perPage, 10);
  assert.equal(result.totalPages, 3);
});

test("no items", () => {
  assert.deepEqual(paginate([], 1, 5), {
    items: [], page: 1, perPage: 5, totalPages: 0, hasPrev: false, hasNext: false,
  });
});

test("a page after the last one is empty", () => {
  const result = paginate(letters, 5, 2);
  assert.deepEqual(result.items, []);
  assert.equal(result.totalPages, 3);
  assert.equal(result.hasNext, false);
  assert.equal(result.hasPrev, true);
});

test("the array is left as it was", () => {
  const items = ["x", "y", "z"];
  paginate(items, 1, 2);
  assert.deepEqual(items, ["x", "y", "z"]);
});

test("every item appears on exactly one page", () => {
  const numbers = Array.from({ length: 37 }, (_, i) => i);
  for (const perPage of [1, 3, 5, 10, 37, 50]) {
    const { totalPages } = paginate(numbers, 1, perPage);
    const seen = [];
    for (let page = 1; page <= totalPages; page += 1) {
      seen.push(...paginate(numbers, page, perPage).items);
    }
    assert.deepEqual(seen, numbers);
  }
});

test("bad arguments throw RangeError", () => {
  for (const [page, perPage] of [[0, 2], [-1, 2], [1.5, 2], [1, 0], [1, 2.5], ["1", 2], [NaN, 2]]) {
    assert.throws(() => paginate(letters, page, perPage), RangeError, `${page}, ${perPage}`);
  }
});
