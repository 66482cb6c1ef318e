// File sizes for people, in the upload dialog.

const SI = ["B", "kB", "MB", "GB", "TB"];
const BINARY = ["B", "KiB", "MiB", "GiB", "TiB"];

/**
 * formatBytes(1536, { binary: true }) -> "1.5 KiB"; formatBytes(999) -> "999 B"; formatBytes(1000) -> "1.0 kB".
 *
 * Units step by 1000 (kB, MB, GB, TB) or, with binary, by 1024 (KiB, MiB, GiB, TiB); TB / TiB is the largest, so
 * bigger sizes stay in it ("1500.0 TB"). Bytes are shown as a whole number without decimals; other units with
 * `decimals` digits after the point (default 1). A negative size is formatted like its absolute value, with a
 * leading minus. Throws a TypeError for anything but a finite number.
 */
export function formatBytes(size, { binary = false, decimals = 1 } = {}) {
  if (typeof size !== "number") {
    throw new TypeError(`expected a finite number, got ${size}`);
  }
  const base = binary ? 1024 : 1000;
  const units = binary ? BINARY : SI;
  const sign = size < 0 ? "-" : "";
  let value = Math.abs(size);
  if (value < base) {
    return `${sign}${value} B`;
  }
  let unit = 0;
  while (value >= base && unit < units.length - 1) {
    value /= base;
    unit += 1;
  }
  return `${sign}${value.toFixed(decimals)} ${units[unit]}`;
}
