import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { ROOT } from './ops-helpers.js';

// An alert on a metric nobody exports never fires: every taskline_* name in the alert rules and
// the dashboard must be one the code registers (histograms add _bucket, _sum and _count).

interface Rule {
  alert?: string;
  expr?: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap(name => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? sourceFiles(full) : full.endsWith('.ts') ? [full] : [];
  });
}

/** Metric names registered in the packages' sources, with the series names Prometheus sees. */
function exportedSeries(): Set<string> {
  const series = new Set<string>();
  for (const pkg of ['shared', 'producer', 'worker', 'scheduler']) {
    for (const file of sourceFiles(path.join(ROOT, pkg, 'src'))) {
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(/name:\s*'(taskline_[a-z0-9_]+)'/g)) {
        const name = match[1] as string;
        series.add(name);
        for (const suffix of ['_bucket', '_sum', '_count']) series.add(name + suffix);
      }
    }
  }
  return series;
}

const namedIn = (expr: string): string[] => [...new Set(expr.match(/\btaskline_[a-z0-9_]+/g) ?? [])];

describe('ops: Prometheus alert rules and Grafana dashboard', () => {
  const exported = exportedSeries();
  const rules = (parse(readFileSync(path.join(ROOT, 'ops/prometheus/alerts.yml'), 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> })
    .groups.flatMap(g => g.rules);

  it('finds the connection, job and beat metrics in the code (the check below is not vacuous)', () => {
    for (const name of ['taskline_redis_certificate_expiry_timestamp_seconds', 'taskline_redis_pool_exhausted_total', 'taskline_jobs_total', 'taskline_beat_leader']) {
      expect(exported.has(name), name).to.equal(true);
    }
  });

  it('names only metrics the code exports', () => {
    const unknown = rules.flatMap(r => namedIn(r.expr ?? '').filter(m => !exported.has(m)).map(m => `${r.alert}: ${m}`));
    expect(unknown).to.deep.equal([]);
  });

  it('alerts on what the operator must know: expiring certificates, pool exhaustion, auth/TLS/network errors, backlog, no leader, worker down', () => {
    const byMetric = (metric: string, extra?: RegExp): Rule[] => rules.filter(r => r.expr?.includes(metric) && (!extra || extra.test(r.expr)));
    expect(byMetric('taskline_redis_certificate_expiry_timestamp_seconds', /30 \* 86400/), 'cert within 30 days').to.have.length.greaterThan(0);
    expect(byMetric('taskline_redis_pool_exhausted_total')).to.have.length.greaterThan(0);
    for (const kind of ['auth', 'tls', 'network']) {
      expect(byMetric('taskline_redis_connection_errors_total', new RegExp(`kind="${kind}"`)), kind).to.have.length.greaterThan(0);
    }
    expect(byMetric('taskline_queue_jobs', /state="waiting"/)).to.have.length.greaterThan(0);
    expect(byMetric('taskline_beat_leader', /< 1|absent/)).to.have.length.greaterThan(0);
    expect(byMetric('taskline_worker_ready', /== 0/)).to.have.length.greaterThan(0);
  });

  it('gives every rule a unique name, an expression, a severity and a summary', () => {
    const names = rules.map(r => r.alert);
    expect(new Set(names).size).to.equal(names.length);
    for (const rule of rules) {
      expect(rule.alert, JSON.stringify(rule)).to.match(/^Taskline[A-Za-z]+$/);
      expect(rule.expr, `${rule.alert} expr`).to.be.a('string').and.not.equal('');
      expect(rule.labels?.['severity'], `${rule.alert} severity`).to.be.oneOf(['warning', 'critical']);
      expect(rule.annotations?.['summary'], `${rule.alert} summary`).to.be.a('string');
      // Balanced parentheses and braces: the cheapest syntax check without promtool.
      for (const [open, close] of [['(', ')'], ['{', '}'], ['[', ']']] as const) {
        expect((rule.expr ?? '').split(open).length, `${rule.alert} ${open}${close}`).to.equal((rule.expr ?? '').split(close).length);
      }
    }
  });

  it('has a Grafana dashboard over the same exported metrics', () => {
    const dashboard = JSON.parse(readFileSync(path.join(ROOT, 'ops/grafana/taskline-dashboard.json'), 'utf8')) as {
      panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
    };
    const exprs = dashboard.panels.flatMap(p => (p.targets ?? []).map(t => ({ panel: p.title, expr: t.expr })));
    expect(exprs.length).to.be.greaterThan(10);
    const unknown = exprs.flatMap(e => namedIn(e.expr).filter(m => !exported.has(m)).map(m => `${e.panel}: ${m}`));
    expect(unknown).to.deep.equal([]);
    const shown = new Set(exprs.flatMap(e => namedIn(e.expr)));
    for (const metric of ['taskline_redis_pool_connections', 'taskline_redis_connection_errors_total', 'taskline_queue_jobs', 'taskline_job_duration_seconds_bucket', 'taskline_beat_leader']) {
      expect(shown.has(metric), metric).to.equal(true);
    }
  });

  it('reads queue depth with max by (queue…), never a sum over the workers that all export the same series', () => {
    const dashboard = JSON.parse(readFileSync(path.join(ROOT, 'ops/grafana/taskline-dashboard.json'), 'utf8')) as { panels: Array<{ targets?: Array<{ expr: string }> }> };
    const exprs = [...rules.map(r => r.expr ?? ''), ...dashboard.panels.flatMap(p => (p.targets ?? []).map(t => t.expr))];
    const depth = exprs.filter(e => e.includes('taskline_queue_jobs'));
    expect(depth.length).to.be.greaterThan(1);
    for (const expr of depth) {
      // Every use sits directly inside max by (queue[, state]) (…): one value per queue, however many workers.
      const uses = expr.split('taskline_queue_jobs').length - 1;
      const underMax = expr.match(/max by \(queue(, state)?\) \((deriv\()?taskline_queue_jobs/g)?.length ?? 0;
      expect(underMax, expr).to.equal(uses);
    }
  });
});
