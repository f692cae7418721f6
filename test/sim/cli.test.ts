import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { registerSimCommand, simOptionsFromFlags } from "../../src/cli/sim-command.js";
import { resolveSimOptions, ZERO_COST_SLOTS } from "../../src/sim/index.js";

const flags = {
  host: "127.0.0.1",
  port: "0",
  fault500: "0",
  fault429: "0.25",
  faultReset: "0",
  faultHang: "0",
  seed: "7",
  zeroCost: false,
};

describe("sluice sim flags", () => {
  it("map onto validated simulator options, absent flags taking the defaults", () => {
    const opts = resolveSimOptions(simOptionsFromFlags({ ...flags, slots: "3", stepMs: "2.5", maxQueue: "0" }));
    expect(opts).toMatchObject({ port: 0, slots: 3, stepMs: 2.5, maxQueue: 0, seed: 7, blockSize: 16 });
    expect(opts.faults).toMatchObject({ error429: 0.25, error500: 0 });
  });

  it("applies zero-cost mode and rejects invalid values", () => {
    const zero = resolveSimOptions(simOptionsFromFlags({ ...flags, zeroCost: true, stepMs: "50" }));
    expect(zero).toMatchObject({ stepMs: 0, prefillMsPerToken: 0, slots: ZERO_COST_SLOTS });
    expect(() => resolveSimOptions(simOptionsFromFlags({ ...flags, slots: "0" }))).toThrow();
    expect(() => resolveSimOptions(simOptionsFromFlags({ ...flags, fault500: "0.9" }))).toThrow(/sum/);
  });

  it("registers the `sim` command", () => {
    const program = new Command();
    registerSimCommand(program);
    const sim = program.commands.find((c) => c.name() === "sim");
    expect(sim?.options.map((o) => o.long)).toEqual(
      expect.arrayContaining(["--slots", "--step-ms", "--prefill-ms-per-token", "--zero-cost", "--fault-hang"]),
    );
  });
});
