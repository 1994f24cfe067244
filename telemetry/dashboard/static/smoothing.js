// Smoothing a chart's line, as W&B's line plots do.

// W&B's default: the time-weighted exponential moving average (TWEMA). The
// weight of earlier points decays with the distance along x (scaled to the
// series' x range), not with the number of points, so lines of different
// densities smooth alike; a de-bias term keeps the first values from being
// pulled toward zero. Gaps (null) stay gaps and leave the average untouched.
export const VIEWPORT_SCALE = 1000;

export function twema(xs, ys, param) {
  const weight = Math.min(Math.sqrt(param || 0), 0.999);
  const out = new Array(ys.length).fill(null);
  let first = null;
  let last = null;
  for (let i = 0; i < xs.length; i++) {
    if (ys[i] !== null && xs[i] !== null) {
      if (first === null) first = xs[i];
      last = xs[i];
    }
  }
  const range = first === null || last === first ? 1 : last - first;
  let total = 0;
  let debias = 0;
  let prevX = null;
  for (let i = 0; i < ys.length; i++) {
    const y = ys[i];
    if (y === null || !Number.isFinite(y)) continue;
    const dx = prevX === null ? 0 : ((xs[i] - prevX) / range) * VIEWPORT_SCALE;
    const decay = Math.pow(weight, dx);
    total = total * decay + y;
    debias = debias * decay + 1;
    out[i] = total / debias;
    prevX = xs[i];
  }
  return out;
}

// The mean of the points in a window centred on each point (W&B's running average).
export function runningAverage(ys, window) {
  const half = Math.max(0, Math.floor((window || 1) / 2));
  const out = new Array(ys.length).fill(null);
  let sum = 0;
  let count = 0;
  let lo = 0;
  let hi = -1;
  for (let i = 0; i < ys.length; i++) {
    while (hi < Math.min(ys.length - 1, i + half)) {
      hi++;
      if (ys[hi] !== null) { sum += ys[hi]; count++; }
    }
    while (lo < i - half) {
      if (ys[lo] !== null) { sum -= ys[lo]; count--; }
      lo++;
    }
    if (ys[i] !== null && count > 0) out[i] = sum / count;
  }
  return out;
}

export function smooth(xs, ys, mode, param) {
  if (mode === "ema") return twema(xs, ys, param);
  if (mode === "avg") return runningAverage(ys, Math.max(1, Math.round(param)));
  return null;
}
