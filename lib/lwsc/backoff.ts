/** Delay before the next connection attempt after `failures` failed ones in a row: min, 2 min, 4 min ... max. */
export function backoffDelay (failures: number, min: number, max: number): number {
  if (failures <= 0) return 0
  // Past 2^20 the product is far beyond any sane max; capping the exponent keeps it finite.
  return Math.min(max, min * 2 ** Math.min(failures - 1, 20))
}
