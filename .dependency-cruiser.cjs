/**
 * Sluice's layering, checked by `npm run depcheck` (part of `npm test`). See docs/architecture.md.
 * Only src/ is held to these rules; test/ and bench/ may import anything.
 * @type {import('dependency-cruiser').IConfiguration}
 */
const layer = (name, comment, from, to) => ({
  name,
  comment,
  severity: "error",
  from: { path: `^src/${from}/` },
  to: { path: `^src/(${to.join("|")})/` },
});

module.exports = {
  forbidden: [
    layer(
      "store-is-the-bottom",
      "store/ is the persistence layer: it knows no domain, dispatch, HTTP, backend or CLI code",
      "store",
      ["batch", "dispatch", "api", "backends", "cli"],
    ),
    {
      name: "store-not-to-crypto",
      comment:
        "store/ holds no key material and no cipher: its data keys and row codec are made above it " +
        "(openStore's `encryption`, src/crypto/row-cipher.ts `encryptionAtRest`); it declares the interfaces.",
      severity: "error",
      from: { path: "^src/store/" },
      to: { path: "^src/crypto/" },
    },
    layer(
      "backends-below-dispatch",
      "backends/ are called by dispatch/; they know nothing of it, of HTTP or of the CLI",
      "backends",
      ["dispatch", "api", "cli"],
    ),
    layer("blob-is-standalone", "blob/ stores bytes; it knows no rows, no dispatch, no HTTP, no CLI", "blob", [
      "store",
      "dispatch",
      "api",
      "cli",
    ]),
    layer("batch-below-dispatch", "batch/ is the domain; dispatch/, api/ and cli/ use it", "batch", [
      "dispatch",
      "api",
      "cli",
    ]),
    layer("crypto-is-low", "crypto/ encrypts; it knows no HTTP, dispatch, CLI or backends", "crypto", [
      "api",
      "dispatch",
      "cli",
      "backends",
    ]),
    layer(
      "flow-is-standalone",
      "flow/ (flow control, client load) is policy over numbers: the backends' router and the dispatcher use it",
      "flow",
      ["store", "batch", "blob", "crypto", "backends", "dispatch", "api", "cli"],
    ),
    {
      name: "cli-is-the-top",
      comment: "only cli/ imports cli/: commands assemble everything else, nothing depends on them",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/cli/" },
      to: { path: "^src/cli/" },
    },
    {
      name: "sql-only-in-store",
      comment: "every SQL statement lives in store/: Kysely (and its sql tag) is imported there only",
      severity: "error",
      from: {
        path: "^src/",
        pathNot: ["^src/store/"],
      },
      to: { path: "(^|/)node_modules/(kysely|better-sqlite3|pg|pg-copy-streams)/" },
    },
    {
      name: "no-circular",
      comment:
        "no import cycles that exist at run time: a cycle closed only by `import type` (erased at compile time) " +
        "or by a dynamic import() is allowed",
      severity: "error",
      from: { path: "^src/" },
      to: {
        circular: true,
        viaOnly: { dependencyTypesNot: ["type-only", "dynamic-import"] },
      },
    },
    {
      name: "no-dev-deps-in-src",
      comment: "src/ is what ships: it may not import devDependencies (type-only imports of @types/* aside)",
      severity: "error",
      from: { path: "^src/" },
      to: { dependencyTypes: ["npm-dev"], pathNot: ["node_modules/@types/"] },
    },
    {
      name: "not-to-unresolvable",
      comment: "an import that resolves to nothing",
      severity: "error",
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^dist/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      extensions: [".ts", ".js", ".mjs", ".cjs", ".d.ts", ".json"],
    },
    reporterOptions: {
      mermaid: { minify: false },
    },
  },
};
