import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Tests start real worker threads and child processes; on a 2-core machine, running test
    // files one at a time keeps them from starving each other.
    fileParallelism: false,
  },
});
