/** A figure over repeated samples: the median, with the range the samples spanned. */
export interface Spread { median: number, min: number, max: number }

/** Median and min–max of the finite values (NaN for all three when there are none). */
export function spread (values: readonly number[]): Spread {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN }
  return { median: v[Math.floor((v.length - 1) / 2)], min: v[0], max: v[v.length - 1] }
}
