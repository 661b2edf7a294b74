// The published type declarations, as a strict TypeScript service sees them: a consumer file
// (test/fixtures/consumer/strict.ts) must compile against dist/src/*.d.ts without casts.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));

function diagnostics(file: string): string[] {
  const program = ts.createProgram([file], {
    strict: true, exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true, noEmit: true,
    module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts', 'lib.dom.d.ts'], types: ['node'], skipLibCheck: true,
  });
  return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

describe('published types', () => {
  it('a strict service (exactOptionalPropertyTypes, noUncheckedIndexedAccess) compiles against them without a cast', () => {
    expect(diagnostics(path.join(here, 'fixtures', 'consumer', 'strict.ts'))).toEqual([]);
  }, 60_000);
});
