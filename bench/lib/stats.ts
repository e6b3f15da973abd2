/** median of the finite values (a failed round is NaN); the mean of the middle two for an even count. */
export function median(values: readonly number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * pairedRatio is the median over rounds of a[i] / b[i]: both were measured in
 * the same round, close in time, so the noise of a shared machine cancels
 * better than in the ratio of two medians.
 */
export function pairedRatio(a: readonly number[], b: readonly number[]): number {
  const ratios: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    if (Number.isFinite(x) && Number.isFinite(y) && y > 0) ratios.push(x / y);
  }
  return median(ratios);
}

/** rate formats decisions per second as millions with two decimals. */
export function rate(perSecond: number): string {
  return Number.isFinite(perSecond) ? `${(perSecond / 1e6).toFixed(2)}M` : "–";
}

/** ratio formats a ratio as `0.87x`. */
export function ratio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}x` : "–";
}

/** bytes formats a byte count without decimals. */
export function bytes(value: number): string {
  return Number.isFinite(value) ? `${Math.round(value)} B` : "–";
}
