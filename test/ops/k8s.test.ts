import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { parseAllDocuments } from 'yaml';

// The Kubernetes example promises a worker that drains before it is killed, is probed on its real
// endpoints and reads its secrets from mounted Secrets; a hand-written structural check (no
// cluster, no network) holds the manifests to that.

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dir = path.join(root, 'k8s');

interface Doc {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: Record<string, unknown>;
}
interface Probe {
  httpGet?: { path: string; port: number | string };
}
interface ContainerSpec {
  name: string;
  image: string;
  command: string[];
  ports?: Array<{ name?: string; containerPort: number }>;
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; runAsUser?: number };
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
interface PodSpec {
  terminationGracePeriodSeconds?: number;
  restartPolicy?: string;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  containers: ContainerSpec[];
  volumes?: Array<{ name: string; secret?: { secretName: string; items?: Array<{ key: string; path: string }> }; emptyDir?: unknown }>;
}

// The kinds the example may use, with the API version each is served under.
const API_VERSIONS: Record<string, string> = {
  Deployment: 'apps/v1',
  ScaledObject: 'keda.sh/v1alpha1',
  TriggerAuthentication: 'keda.sh/v1alpha1',
  HorizontalPodAutoscaler: 'autoscaling/v2',
};

function loadAll(): Doc[] {
  const docs: Doc[] = [];
  for (const file of readdirSync(dir).filter(f => /\.ya?ml$/.test(f))) {
    for (const doc of parseAllDocuments(readFileSync(path.join(dir, file), 'utf8'))) {
      expect(doc.errors, `${file}: YAML errors`).to.deep.equal([]);
      docs.push(doc.toJS() as Doc);
    }
  }
  return docs;
}

const env = (c: ContainerSpec): Record<string, string> => Object.fromEntries((c.env ?? []).map(e => [e.name, e.value ?? '']));

function flag(command: string[], name: string): string | undefined {
  const at = command.indexOf(name);
  return at < 0 ? undefined : command[at + 1];
}

function portOf(c: ContainerSpec, port: number | string | undefined): string | undefined {
  if (typeof port === 'number') return String(port);
  return String(c.ports?.find(p => p.name === port)?.containerPort ?? 'unknown');
}

describe('k8s: the Kubernetes example', () => {
  const docs = loadAll();
  const byKind = (kind: string): Doc[] => docs.filter(d => d.kind === kind);
  const deployment = byKind('Deployment')[0] as Doc;
  const pod = ((deployment?.spec['template'] as { spec: PodSpec }) ?? {}).spec;
  const worker = pod?.containers[0] as ContainerSpec;

  it('every document has a known kind under its API version, and a name', () => {
    expect(docs.length).to.be.greaterThan(1);
    for (const doc of docs) {
      expect(Object.keys(API_VERSIONS), `kind ${doc.kind}`).to.include(doc.kind);
      expect(doc.apiVersion, doc.kind).to.equal(API_VERSIONS[doc.kind]);
      expect(doc.metadata?.name, doc.kind).to.match(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
    expect(byKind('Deployment')).to.have.length(1);
  });

  it('the Deployment selects its own pods and runs taskline-worker start from the image', () => {
    const selector = (deployment.spec['selector'] as { matchLabels: Record<string, string> }).matchLabels;
    const labels = (deployment.spec['template'] as { metadata: { labels: Record<string, string> } }).metadata.labels;
    for (const [k, v] of Object.entries(selector)) expect(labels[k], k).to.equal(v);
    expect(worker.image).to.match(/^taskline(:|$)/);
    expect(worker.command.slice(0, 2)).to.deep.equal(['taskline-worker', 'start']);
    expect(flag(worker.command, '--tasks')).to.be.a('string');
  });

  it('probes /healthz (startup, liveness) and /readyz (readiness) on the port the worker serves them', () => {
    const metricsPort = flag(worker.command, '--metrics-port');
    expect(worker.livenessProbe?.httpGet?.path).to.equal('/healthz');
    expect(worker.startupProbe?.httpGet?.path).to.equal('/healthz');
    expect(worker.readinessProbe?.httpGet?.path).to.equal('/readyz');
    for (const probe of [worker.livenessProbe, worker.readinessProbe, worker.startupProbe]) {
      expect(portOf(worker, probe?.httpGet?.port)).to.equal(metricsPort);
    }
  });

  it('restarts a worker that exits (restartPolicy Always: a fatal start error shows as CrashLoopBackOff)', () => {
    expect(pod.restartPolicy, 'set explicitly, with the reason beside it').to.equal('Always');
  });

  it('gives SIGTERM more time than the drain grace before Kubernetes kills the pod', () => {
    const graceMs = Number(env(worker)['TASKLINE_SHUTDOWN_GRACE_MS'] ?? 30_000);
    expect(pod.terminationGracePeriodSeconds).to.be.a('number');
    expect((pod.terminationGracePeriodSeconds as number) * 1000).to.be.above(graceMs);
  });

  it('runs as non-root on a read-only root file system, production settings, TLS on both connections', () => {
    expect(pod.securityContext?.runAsNonRoot).to.equal(true);
    expect(pod.securityContext?.runAsUser).to.be.above(0);
    expect(worker.securityContext?.readOnlyRootFilesystem).to.equal(true);
    expect(worker.securityContext?.allowPrivilegeEscalation).to.equal(false);
    const e = env(worker);
    expect(e['TASKLINE_ENV']).to.equal('production');
    expect(e['REDIS_SSL']).to.equal('true');
    expect(e['RESULT_REDIS_SSL']).to.equal('true');
    expect(worker.volumeMounts?.some(m => m.mountPath === '/tmp'), '/tmp writable (tsx compiles the tasks module there)').to.equal(true);
  });

  it('reads the CA, client certificate and password from mounted Secret items; no secret literal, no CA key', () => {
    const mounts = worker.volumeMounts ?? [];
    const volumes = new Map((pod.volumes ?? []).map(v => [v.name, v]));
    // The file each path in the container comes from: mountPath/item.path → secret key.
    const files = new Map<string, string>();
    for (const m of mounts) {
      const volume = volumes.get(m.name);
      expect(volume, `volume ${m.name}`).to.exist;
      if (!volume?.secret) continue;
      expect(m.readOnly, `${m.name} read-only`).to.equal(true);
      expect(volume.secret.items, `${m.name}: name the items, so nothing else in the Secret is mounted`).to.be.an('array').that.is.not.empty;
      for (const item of volume.secret.items ?? []) {
        expect(item.key, `${m.name} mounts a CA key`).not.to.match(/ca\.key|ca-private/);
        files.set(`${m.mountPath}/${item.path}`, `${volume.secret.secretName}/${item.key}`);
      }
    }
    for (const e of worker.env ?? []) {
      if (/PASSWORD|TOKEN|SECRET/.test(e.name)) {
        expect(e.name, 'secrets only as *_FILE').to.match(/_FILE$/);
      }
      if (/(_FILE|_CA_CERT|_CLIENT_CERT|_CLIENT_KEY)$/.test(e.name)) {
        expect(files.has(e.value ?? ''), `${e.name}=${e.value} is a mounted Secret item`).to.equal(true);
      }
    }
    expect([...files.values()]).to.include.members(['taskline-client-tls/ca.crt', 'taskline-client-tls/client.key']);
  });

  it('scales the worker Deployment on the depth of its queue, over TLS, as the read-only metrics user', () => {
    const scalers = [...byKind('ScaledObject'), ...byKind('HorizontalPodAutoscaler')];
    expect(scalers).to.have.length(1);
    const scaled = scalers[0] as Doc;
    expect((scaled.spec['scaleTargetRef'] as { name: string }).name).to.equal(deployment.metadata.name);
    const min = scaled.spec['minReplicaCount'] as number;
    const max = scaled.spec['maxReplicaCount'] as number;
    expect(min).to.be.at.least(1);
    expect(max).to.be.above(min);
    const [trigger] = scaled.spec['triggers'] as Array<{ type: string; metadata: Record<string, string>; authenticationRef: { name: string } }>;
    expect(trigger?.type).to.equal('redis');
    const prefix = env(worker)['TASKLINE_PREFIX'] ?? 'taskline';
    expect(trigger?.metadata['listName']).to.match(new RegExp(`^${prefix}:[\\w.-]+:wait$`));
    expect(trigger?.metadata['address']).to.equal(`${env(worker)['REDIS_HOST']}:${env(worker)['REDIS_PORT']}`);
    expect(trigger?.metadata['enableTLS']).to.equal('true');
    expect(Number(trigger?.metadata['listLength'])).to.be.above(0);
    const auth = byKind('TriggerAuthentication').find(d => d.metadata.name === trigger?.authenticationRef.name);
    expect(auth, 'the TriggerAuthentication it names').to.exist;
    const params = (auth?.spec['secretTargetRef'] as Array<{ parameter: string; name: string; key: string }>).map(p => p.parameter);
    expect(params).to.include.members(['username', 'password', 'tls', 'ca', 'cert', 'key']);
  });
});
