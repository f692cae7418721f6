import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // 2-core machines: run files one or two at a time so child processes and llama.cpp get CPU.
    fileParallelism: true,
    maxWorkers: 2,
    pool: "forks",
  },
});
