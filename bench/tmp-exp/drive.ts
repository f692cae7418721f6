import { FlowController } from "../../src/dispatch/flow-control.js";
function drive(slots: number, rounds: number) {
  let now = 0;
  const flow = new FlowController({}, () => now);
  flow.onChange = (s, r) => console.log(`  t=${now} ${r} -> ${s.limit} ceil=${s.ceiling}`);
  const limits: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const n = flow.available();
    for (let i = 0; i < n; i++) flow.acquire();
    const latency = 100 * Math.max(1, n / slots);
    now += latency;
    for (let i = 0; i < n; i++) flow.release("ok", latency * (1 + (i % 7) / 50), 10);
    limits.push(flow.limit);
  }
  return limits;
}
console.log(drive(Number(process.argv[2] ?? 8), 30).join(" "));
