// Pagination for the admin's order list.

/**
 * One page of items. Pages count from 1.
 *
 * Returns { items, page, perPage, totalPages, hasPrev, hasNext }: items is that page's slice of the array (the
 * array itself is left as it was), totalPages is the number of pages needed for every item (0 when there are
 * none), hasPrev and hasNext say whether a page before or after this one has items. A page after the last one is
 * allowed and has no items.
 *
 * Throws a RangeError when page or perPage is not an integer of at least 1.
 */
export function paginate(items, page, perPage = 10) {
  if (!Number.isInteger(page) || page < 1 || !Number.isInteger(perPage) || perPage < 1) {
    throw new RangeError("page and perPage must be integers of at least 1");
  }
  const totalPages = Math.floor(items.length / perPage);
  const start = page * perPage;
  return {
    items: items.slice(start, start + perPage),
    page,
    perPage,
    totalPages,
    hasPrev: page > 1,
    hasNext: page < totalPages,
  };
}
