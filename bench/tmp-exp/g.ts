import { startSimProcess, sampleGauges } from "../lib/processes.js";
import { generateInput } from "../lib/gen-input.js";
import { runPlainClient } from "../lib/plain-client.js";
const sim = await startSimProcess({ slots: 32, stepMs: 10, minOut: 10, maxOut: 40, maxQueue: 4 });
await generateInput({ path: "/tmp/exp/g.jsonl", count: 300 });
const s = sampleGauges(sim);
await runPlainClient({ inputPath: "/tmp/exp/g.jsonl", outputPath: "/tmp/exp/g.out", baseUrl: sim.url, concurrency: 32, maxAttempts: 50 });
console.log(await s(300));
await sim.stop();
