// Makes the tutorial's bundled data set: 2-D points in [-1, 1]², label 1 above the parabola
// x2 = 1.2·x1² − 0.4, else 0. Nonlinear enough to need the hidden layers of the 2-3-2-1 network,
// easy enough for it to reach > 95% held-out accuracy. Seeded, so the files are reproducible:
//   npm run build && node scripts/make-tutorial-data.mjs
import { writeFileSync } from 'node:fs';
import { Rng } from '../dist/src/rng.js';

const rng = new Rng(2024);
function make(n) {
  const lines = [];
  for (let i = 0; i < n; i++) {
    const x1 = rng.uniform(-1, 1), x2 = rng.uniform(-1, 1);
    const y = x2 > 1.2 * x1 * x1 - 0.4 ? 1 : 0;
    lines.push(JSON.stringify({ x: [Number(x1.toFixed(4)), Number(x2.toFixed(4))], y }));
  }
  return lines.join('\n') + '\n';
}
writeFileSync(new URL('../data/tutorial-train.ndjson', import.meta.url), make(800));
writeFileSync(new URL('../data/tutorial-test.ndjson', import.meta.url), make(200));
