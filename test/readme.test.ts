// The README's library example, run as written: extracted from README.md, saved as an .mjs file in
// a fresh directory where `bptrain` resolves to this package (as after `npm install bptrain`), and
// run by Node 20 with no TypeScript in between.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const app = mkdtempSync(path.join(tmpdir(), 'bptrain-readme-'));
afterAll(() => rmSync(app, { recursive: true, force: true }));

describe('README.md: the library example', () => {
  it('runs as written on this Node, and trains the tutorial network to ≥ 95% held-out accuracy', () => {
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## The library'));
    const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
    expect(code).toBeDefined();
    mkdirSync(path.join(app, 'node_modules'));
    symlinkSync(root, path.join(app, 'node_modules', 'bptrain'), 'dir');
    symlinkSync(path.join(root, 'data'), path.join(app, 'data'), 'dir');
    writeFileSync(path.join(app, 'example.mjs'), code!);
    const r = spawnSync(process.execPath, ['example.mjs'], { cwd: app, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const accuracy = Number(/held-out loss [\d.]+, accuracy ([\d.]+)/.exec(r.stdout)?.[1]);
    expect(accuracy).toBeGreaterThanOrEqual(0.95);
    expect(r.stdout).toContain('4 2 1');
    expect(JSON.parse(readFileSync(path.join(app, 'model.json'), 'utf8')).format).toBe('bptrain-model');
    expect(existsSync(path.join(app, 'model.json'))).toBe(true);
  });
});
