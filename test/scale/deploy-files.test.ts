/**
 * deploy/ is checked here, without a Docker engine or a cluster: every YAML parses; Kubernetes
 * objects have their required fields, and what refers to something (selectors, Services, the
 * HPA's target and metric, ConfigMap/Secret keys, volumes) finds it; the compose file's
 * dependencies and healthchecks hold together; the Dockerfile builds from files that exist, as a
 * non-root user; every SLUICE_* variable set is one Sluice reads. `docker compose config` runs too
 * when a docker CLI happens to be installed.
 */
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { renderPrometheus } from "../../src/api/metrics-routes.js";
import { routeFileSchema } from "../../src/backends/route-config.js";
import { BATCH_STATUSES } from "../../src/batch/lifecycle.js";
import { DEFAULT_WORKER_OPTIONS } from "../../src/dispatch/worker.js";
import { ROOT } from "./helpers/sluice-process.js";

const DEPLOY = join(ROOT, "deploy");
const K8S = join(DEPLOY, "k8s");

// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped YAML; each check narrows what it reads.
type Obj = Record<string, any>;

const read = (path: string) => readFileSync(path, "utf8");

function yamlDocs(path: string): Obj[] {
  const docs = parseAllDocuments(read(path), { merge: true });
  for (const d of docs) {
    expect(d.errors, `${path}: ${d.errors.join("; ")}`).toEqual([]);
    expect(d.warnings, `${path}: ${d.warnings.join("; ")}`).toEqual([]);
  }
  return docs.map((d) => d.toJS() as Obj).filter((d) => d !== null);
}

const manifestFiles = readdirSync(K8S).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml");
const objects = manifestFiles.flatMap((f) => yamlDocs(join(K8S, f)).map((o) => ({ file: f, o })));
const ofKind = (kind: string) => objects.filter((x) => x.o.kind === kind).map((x) => x.o);
const named = (kind: string, name: string) => ofKind(kind).find((o) => o.metadata.name === name);

const API_VERSIONS: Record<string, string> = {
  Namespace: "v1",
  ConfigMap: "v1",
  Secret: "v1",
  Service: "v1",
  Deployment: "apps/v1",
  PodDisruptionBudget: "policy/v1",
  HorizontalPodAutoscaler: "autoscaling/v2",
};

const matches = (selector: Obj, labels: Obj) => Object.entries(selector).every(([k, v]) => labels?.[k] === v);

/** Every SLUICE_* name Sluice's sources read. */
function knownSluiceVariables(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".ts")) for (const m of read(p).matchAll(/SLUICE_[A-Z0-9_]+/g)) names.add(m[0]);
    }
  };
  walk(join(ROOT, "src"));
  return names;
}

describe("Kubernetes manifests (deploy/k8s)", () => {
  it("are well-formed objects of known kinds, all in the sluice namespace", () => {
    expect(objects.length).toBeGreaterThanOrEqual(9);
    for (const { file, o } of objects) {
      expect(API_VERSIONS[o.kind], `${file}: unexpected kind ${o.kind}`).toBeDefined();
      expect(o.apiVersion, `${file} ${o.kind}`).toBe(API_VERSIONS[o.kind]);
      expect(o.metadata?.name, file).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      if (o.kind !== "Namespace") expect(o.metadata.namespace, `${file} ${o.metadata.name}`).toBe("sluice");
    }
  });

  it("are all listed in kustomization.yaml, which lists only existing files", () => {
    const k = parse(read(join(K8S, "kustomization.yaml"))) as Obj;
    expect(k.kind).toBe("Kustomization");
    expect([...k.resources].sort()).toEqual([...manifestFiles].sort());
  });

  it("Deployments: selectors match their pods, references resolve, pods run as non-root", () => {
    const deployments = ofKind("Deployment");
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual(["sluice-api", "sluice-worker"]);
    for (const d of deployments) {
      const where = d.metadata.name;
      const pod = d.spec.template;
      expect(Object.keys(d.spec.selector.matchLabels).length, where).toBeGreaterThan(0);
      expect(matches(d.spec.selector.matchLabels, pod.metadata.labels), `${where}: selector vs pod labels`).toBe(true);
      expect(pod.spec.securityContext.runAsNonRoot, where).toBe(true);
      expect(pod.spec.securityContext.runAsUser, where).toBeGreaterThan(0);
      const volumes = new Map<string, Obj>((pod.spec.volumes ?? []).map((v: Obj) => [v.name, v]));
      for (const c of pod.spec.containers) {
        expect(c.image, where).toBeTruthy();
        expect(c.securityContext.allowPrivilegeEscalation, where).toBe(false);
        for (const from of c.envFrom ?? []) {
          if (from.configMapRef) expect(named("ConfigMap", from.configMapRef.name), where).toBeDefined();
          if (from.secretRef) expect(named("Secret", from.secretRef.name), where).toBeDefined();
        }
        for (const m of c.volumeMounts ?? []) expect(volumes.has(m.name), `${where}: volume ${m.name}`).toBe(true);
      }
      for (const v of volumes.values()) {
        const source = v.configMap
          ? named("ConfigMap", v.configMap.name)
          : v.secret
            ? named("Secret", v.secret.secretName)
            : undefined;
        if (!v.configMap && !v.secret) continue;
        expect(source, `${where}: volume ${v.name} source`).toBeDefined();
        const keys = Object.keys({ ...source?.data, ...source?.stringData });
        for (const item of (v.configMap ?? v.secret).items ?? [])
          expect(keys, `${where}: key ${item.key}`).toContain(item.key);
      }
    }
  });

  it("the API runs without a worker, is probed on /health and drains before stopping", () => {
    const api = named("Deployment", "sluice-api") as Obj;
    const c = api.spec.template.spec.containers[0];
    expect(c.args).toEqual(expect.arrayContaining(["serve", "--no-worker", "--host", "0.0.0.0"]));
    expect(c.readinessProbe.httpGet.path).toBe("/health");
    expect(c.ports.map((p: Obj) => p.name)).toContain(c.readinessProbe.httpGet.port);
    expect(c.lifecycle.preStop).toBeDefined();
    expect(api.spec.template.metadata.annotations["prometheus.io/path"]).toBe("/metrics");
  });

  it("workers get the SIGTERM grace their shutdown needs, and a valid routing file", () => {
    const worker = named("Deployment", "sluice-worker") as Obj;
    const c = worker.spec.template.spec.containers[0];
    expect(c.args).toEqual(["worker"]);
    // In-flight calls get shutdownDeadlineMs; flushing and handing back need a margin on top.
    expect(worker.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(
      DEFAULT_WORKER_OPTIONS.shutdownDeadlineMs / 1000 + 20,
    );
    const routes = named("ConfigMap", "sluice-routes") as Obj;
    expect(routeFileSchema.safeParse(parse(routes.data["sluice.yaml"])).success).toBe(true);
    const configEnv = c.env.find((e: Obj) => e.name === "SLUICE_CONFIG").value as string;
    const mount = c.volumeMounts.find((m: Obj) => configEnv.startsWith(`${m.mountPath}/`));
    expect(mount?.name).toBe("routes");
  });

  it("the Service and the PodDisruptionBudget select the API pods", () => {
    const apiPod = (named("Deployment", "sluice-api") as Obj).spec.template;
    const svc = named("Service", "sluice-api") as Obj;
    expect(matches(svc.spec.selector, apiPod.metadata.labels)).toBe(true);
    const portNames = apiPod.spec.containers.flatMap((c: Obj) => c.ports.map((p: Obj) => p.name));
    for (const p of svc.spec.ports) expect(portNames).toContain(p.targetPort);
    const pdb = named("PodDisruptionBudget", "sluice-api") as Obj;
    expect(matches(pdb.spec.selector.matchLabels, apiPod.metadata.labels)).toBe(true);
  });

  it("the HPA scales the workers on sluice_backlog_requests, a metric /metrics serves", () => {
    const hpa = named("HorizontalPodAutoscaler", "sluice-worker") as Obj;
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: "sluice-worker" });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(1);
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas);
    const metric = hpa.spec.metrics[0];
    expect(metric.type).toBe("External");
    expect(metric.external.metric.name).toBe("sluice_backlog_requests");
    const exposition = renderPrometheus({
      pendingRequests: 0,
      runningRequests: 0,
      batches: Object.fromEntries(BATCH_STATUSES.map((s) => [s, 0])) as Record<(typeof BATCH_STATUSES)[number], number>,
    });
    expect(exposition).toMatch(/^sluice_backlog_requests \d+$/m);
    const adapter = parse(read(join(DEPLOY, "prometheus-adapter-values.yaml"))) as Obj;
    expect(adapter.rules.external.map((r: Obj) => r.name.as)).toContain("sluice_backlog_requests");
  });

  it("set only SLUICE_* variables that Sluice reads", () => {
    const known = knownSluiceVariables();
    for (const o of [...ofKind("ConfigMap"), ...ofKind("Secret")]) {
      for (const key of Object.keys({ ...o.data, ...o.stringData })) {
        if (key.startsWith("SLUICE_")) expect(known, `${o.metadata.name}: ${key}`).toContain(key);
      }
    }
  });
});

const dockerCompose = await promisify(execFile)("docker", ["compose", "version"]).then(
  () => true,
  () => false,
);

describe("docker compose file (deploy/docker-compose.yml)", () => {
  const path = join(DEPLOY, "docker-compose.yml");
  const compose = yamlDocs(path)[0] as Obj;
  const services = compose.services as Record<string, Obj>;

  it("has PostgreSQL, an S3 server, an API-only process and two workers, with healthchecks", () => {
    expect(Object.keys(services)).toEqual(expect.arrayContaining(["postgres", "minio", "api", "worker"]));
    for (const name of ["postgres", "minio", "api"]) expect(services[name]?.healthcheck?.test, name).toBeDefined();
    expect(services.api?.command).toEqual(expect.arrayContaining(["serve", "--no-worker", "--host", "0.0.0.0"]));
    expect(services.worker?.command).toEqual(["worker"]);
    expect(services.worker?.deploy?.replicas).toBe(2);
    expect(services.worker?.stop_grace_period).toMatch(/^\d+s$/);
  });

  it("depends only on services it defines, waiting on their health where they have a check", () => {
    for (const [name, s] of Object.entries(services)) {
      expect(s.image ?? s.build, name).toBeDefined();
      for (const [dep, cond] of Object.entries((s.depends_on ?? {}) as Record<string, Obj>)) {
        expect(services[dep], `${name} → ${dep}`).toBeDefined();
        if (cond.condition === "service_healthy")
          expect(services[dep]?.healthcheck, `${dep} healthcheck`).toBeDefined();
      }
      if (s.build) expect(existsSync(join(DEPLOY, s.build.context, s.build.dockerfile)), name).toBe(true);
    }
  });

  it("points Sluice at the database and bucket it defines, with variables Sluice reads", () => {
    const env = services.api?.environment as Record<string, string>;
    expect(env.SLUICE_DATABASE_URL).toMatch(/^postgres:\/\/[^@]+@postgres:5432\//);
    expect(env.SLUICE_BLOBS).toMatch(/^s3:\/\//);
    expect(env.SLUICE_S3_ENDPOINT).toBe("http://minio:9000");
    const known = knownSluiceVariables();
    for (const s of Object.values(services)) {
      for (const key of Object.keys(s.environment ?? {})) if (key.startsWith("SLUICE_")) expect(known).toContain(key);
    }
  });

  // Without a docker CLI the test is reported as skipped (the structural checks above stand in).
  it.skipIf(!dockerCompose)("passes `docker compose config` (needs a docker CLI)", async () => {
    await promisify(execFile)("docker", ["compose", "-f", path, "config", "-q"], { cwd: DEPLOY });
  });
});

describe("Dockerfile (deploy/Dockerfile)", () => {
  const text = read(join(DEPLOY, "Dockerfile"));
  const instructions = text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  const ignore = read(join(DEPLOY, "Dockerfile.dockerignore"))
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));

  it("builds in stages on node:20-bookworm-slim: npm ci, build, prune dev dependencies", () => {
    expect(text).toMatch(/^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
    const froms = instructions.filter((l) => l.startsWith("FROM "));
    expect(froms.map((f) => /^FROM \$\{NODE_IMAGE\} AS (\w+)$/.exec(f)?.[1])).toEqual(["build", "runtime"]);
    expect(text).toContain("npm ci");
    expect(text).toContain("npm run build");
    expect(text).toContain("npm prune --omit=dev");
  });

  it("copies only files that exist and that the ignore file lets through", () => {
    for (const l of instructions.filter((i) => i.startsWith("COPY ") && !i.includes("--from="))) {
      const sources = l.split(/\s+/).slice(1, -1);
      for (const s of sources) {
        expect(existsSync(join(ROOT, s)), s).toBe(true);
        expect(ignore, `${s} is ignored`).not.toContain(s);
      }
    }
  });

  it("runs as a numeric non-root user, node as PID 1, serving on 0.0.0.0", () => {
    const user = instructions.filter((l) => l.startsWith("USER ")).at(-1);
    expect(user).toMatch(/^USER [1-9]\d*(:\d+)?$/);
    const entry = instructions.find((l) => l.startsWith("ENTRYPOINT "));
    expect(JSON.parse(entry?.slice("ENTRYPOINT ".length) ?? "null")).toEqual(["node", "bin/sluice.js"]);
    const cmd = instructions.find((l) => l.startsWith("CMD "));
    expect(JSON.parse(cmd?.slice("CMD ".length) ?? "null")).toEqual(["serve", "--host", "0.0.0.0"]);
  });
});
