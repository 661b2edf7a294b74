// Seeded pseudo-random numbers. Every random choice in bptrain (initial weights, shuffles, data
// splits) comes from here, so a run is reproduced by its seed. xoshiro128** (Blackman & Vigna):
// small state (four uint32, easy to checkpoint), fast in 32-bit integer JS arithmetic, and good
// enough statistically for initialisation and shuffling.

export type RngState = [number, number, number, number];

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number | RngState = 1) {
    if (Array.isArray(seed)) {
      [this.s0, this.s1, this.s2, this.s3] = seed.map((v) => v >>> 0) as RngState;
      if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) throw new RangeError('RNG state must not be all zero');
      return;
    }
    // splitmix32 spreads any integer seed (including 0 and negative) over the 128-bit state: its
    // low 32 bits first, then, for a seed outside −2^31..2^32−1, its high bits too (folded into
    // the last two words), so that seeds 1 and 2^32 + 1 give different streams. Seeds inside that
    // range keep the streams they always had (runs made with them reproduce), so −1 and 2^32 − 1
    // still share one.
    const whole = Math.trunc(seed);
    const high = !Number.isFinite(whole) || (whole >= -(2 ** 31) && whole < 2 ** 32) ? 0 : Math.floor(whole / 2 ** 32);
    let x = whole >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if (high !== 0) {
      x = (high | 0) >>> 0; // |high| < 2^21 for a safe integer
      this.s2 ^= next();
      this.s3 ^= next();
    }
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** The generator's state, to store in a checkpoint and give back to `new Rng(state)`. */
  state(): RngState {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  /** A uniform 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** A uniform integer in [0, n), without modulo bias. n must be in [1, 2^32]. */
  int(n: number): number {
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const v = this.nextU32();
      if (v < limit) return v % n;
    }
  }

  /** A uniform double in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Fisher–Yates shuffle, in place. */
  shuffle(a: { length: number; [i: number]: number }): void {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
