#!/usr/bin/env node
'use strict';
/**
 * ConsistentModelService: serve predictions from a spectra cluster (ioredis).
 *
 * A prediction needs two things with different consistency needs:
 *  - the model to use: the registry's "production" alias, read strong
 *    (linearizable) so no two servers ever disagree on which version is in
 *    production, and no server ever goes back to an older one;
 *  - the entity's features: read causal from a feature view, fast and
 *    available on any node, with the session guarantees (read-your-writes,
 *    monotonic reads) carried from node to node by a session token.
 *
 * Set the keyspaces up once:
 *   KEYSPACE CREATE models MODE strong
 *   KEYSPACE CREATE user MODE causal FEATURES yes
 *
 * Then:
 *   const svc = await ConsistentModelService.open('127.0.0.1:7379');
 *   const v = await svc.register('fraud', 's3://models/fraud/7', { meta: { auc: 0.91 } });
 *   await svc.promote('fraud', v, null);               // first production
 *   await svc.writeFeatures([['42', Date.now(), { clicks_1h: 3, country: 'se' }]]);
 *   const p = await svc.predict('42');   // p.version, p.features, p.eventTimes, p.score
 *   await svc.close();
 *
 * `node model_service.js --check HOST:PORT[,HOST:PORT...]` runs it end to end
 * against a running cluster and exits non-zero on any failure.
 */
const Redis = require('ioredis');

function hostPort(addr) {
  const i = addr.lastIndexOf(':');
  return { host: addr.slice(0, i) || '127.0.0.1', port: Number(addr.slice(i + 1)) };
}

/** A RESP2 flat reply [k1, v1, k2, v2, ...] as an object. */
function pairs(flat) {
  const o = {};
  for (let i = 0; i < flat.length; i += 2) o[flat[i]] = flat[i + 1];
  return o;
}

class ConsistentModelService {
  /**
   * Open a service: features from the node at featuresAddr ("host:port"),
   * the registry through registryAddr (default the same node).
   *
   * `this.features` is one connection, which is one causal session (CONSISTENCY
   * causal). It does not reconnect by itself, since a new connection would be a
   * new session: after losing it, open a service on this or another node with
   * `sessionToken: svc.token` and the session (and its guarantees) goes on
   * there. `svc.token` is kept current by every feature call.
   * `this.registry` reconnects freely: every read says LEVEL linearizable, so
   * no setting of the connection or the keyspace can weaken it.
   */
  static async open(featuresAddr, registryAddr = featuresAddr, opts = {}) {
    const svc = new ConsistentModelService(featuresAddr, registryAddr, opts);
    try {
      await svc.features.connect();
      await svc.features.call('CONSISTENCY', 'causal');
      if (svc.token) await svc.features.call('SESSION', 'RESUME', svc.token);
      await svc.registry.connect();
    } catch (e) {
      svc.close();
      throw svc.lastError || e; // ioredis says only "Connection is closed."
    }
    return svc;
  }

  constructor(featuresAddr, registryAddr, {
    view = 'user', models = 'models', model = 'fraud', sessionToken = null, timeout = 5000,
  } = {}) {
    Object.assign(this, { view, models, model, token: sessionToken });
    const common = { lazyConnect: true, commandTimeout: timeout, connectTimeout: timeout };
    this.features = new Redis({
      ...hostPort(featuresAddr), ...common, retryStrategy: () => null, enableOfflineQueue: false,
    });
    this.registry = new Redis({ ...hostPort(registryAddr), ...common, maxRetriesPerRequest: 1 });
    for (const c of [this.features, this.registry]) {
      c.on('error', (e) => { this.lastError = e; }); // the calls reject with it as well
    }
  }

  close() {
    this.features.disconnect();
    this.registry.disconnect();
  }

  // Features (causal).

  /**
   * {field: [value, eventMs]} of the entity's features. timestamp (Unix ms):
   * the values as they were then (FEATURE.GET ... ASOF), for training sets
   * without leakage. Waits, if needed, until this node holds all the session
   * has seen.
   */
  async getFeatures(entity, timestamp = null) {
    const args = [`${this.view}:${entity}`];
    if (timestamp !== null) args.push('ASOF', Math.trunc(timestamp));
    args.push('WITHTIMES');
    const [[err, reply], [, token]] = await this.features.pipeline()  // one round trip
      .call('FEATURE.GET', ...args).call('SESSION', 'TOKEN').exec();
    if (err) throw err;
    this.token = token;
    const out = {};
    for (const [f, [v, t]] of Object.entries(pairs(reply))) out[f] = [v, Number(t)];
    return out;
  }

  /**
   * Write [[entity, eventMs, {field: value}], ...] as one batch: MULTI/EXEC,
   * applied on every node at once or not at all. Returns, per entity, how many
   * fields this write made current: a value older than the one held goes into
   * the history (ASOF finds it) but never overwrites the newer one, so late
   * and replayed batches are harmless.
   */
  async writeFeatures(batch) {
    const tx = this.features.multi();
    for (const [entity, eventMs, values] of batch) {
      tx.call('FEATURE.SET', `${this.view}:${entity}`, Math.trunc(eventMs),
        ...Object.entries(values).flat());
    }
    const replies = await tx.exec();
    const failed = replies.find(([err]) => err);
    if (failed) throw failed[0];
    this.token = await this.features.call('SESSION', 'TOKEN');
    return replies.map(([, n]) => n);
  }

  // Models (strong).

  /**
   * The version an alias points at ({version, uri, meta, schema, registered_ms,
   * alias}), or null. Linearizable: never older than a promotion acknowledged
   * before this call began.
   */
  async getModel(name = this.model, alias = 'production') {
    const reply = await this.registry.call('LEVEL', 'linearizable', 'MODEL.GET',
      `${this.models}:${name}`, 'ALIAS', alias);
    return reply ? pairs(reply) : null;
  }

  /** Register a model's next version; resolves to its number (1, 2, ...). */
  async register(name, uri, { meta = null, schema = 0 } = {}) {
    const args = ['MODEL.REGISTER', `${this.models}:${name}`, uri];
    if (meta !== null) args.push('META', typeof meta === 'string' ? meta : JSON.stringify(meta));
    if (schema) args.push('SCHEMA', schema);
    return this.registry.call(...args);
  }

  /**
   * Point alias at version if it now points at expectedVersion (null: if it
   * does not exist yet). true if this call moved it; false if someone else
   * got there first (nothing changed).
   */
  async promote(name, version, expectedVersion, alias = 'production') {
    const cond = expectedVersion === null ? ['IFNONE'] : ['IFVERSION', expectedVersion];
    return (await this.registry.call('MODEL.ALIAS', `${this.models}:${name}`, alias,
      version, ...cond)) === 1;
  }

  // Both.

  /** Score an entity with the production model and its features, and say exactly what was used. */
  async predict(entity, name = this.model) {
    const m = await this.getModel(name);
    if (!m) throw new Error(`model '${name}' has no production version`);
    const feats = await this.getFeatures(entity);
    const features = {};
    const eventTimes = {};
    for (const [f, [v, t]] of Object.entries(feats)) {
      features[f] = v;
      eventTimes[f] = t;
    }
    return {
      entity, model: name, version: m.version, uri: m.uri, schema: m.schema,
      features, eventTimes, score: toyScore(m.version, features),
    };
  }
}

/** Stands in for loading the model from its uri and running it. */
function toyScore(version, features) {
  const x = Object.values(features).map(Number).filter(Number.isFinite).reduce((a, b) => a + b, 0);
  return Math.round(x * (1 + version / 10) * 1000) / 1000;
}

// --check: the example end to end against a running cluster.

async function check(addrs) {
  const failures = [];
  const ok = (cond, what) => {
    console.log((cond ? 'ok - ' : 'FAIL: ') + what);
    if (!cond) failures.push(what);
  };
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  const nodes = [0, 1, 2].map((i) => addrs[i % addrs.length]);
  const run = `njs${process.pid}x${Date.now() % 1e8}`;
  const name = `${run}-fraud`;
  const open = [];
  const svc = async (addr, opts = {}) => {
    const s = await ConsistentModelService.open(addr, addr, { model: name, ...opts });
    open.push(s);
    return s;
  };
  try {
    const a = await svc(nodes[0]);
    for (const ks of [['models', 'MODE', 'strong'], ['user', 'MODE', 'causal', 'FEATURES', 'yes']]) {
      await a.registry.call('KEYSPACE', 'CREATE', ...ks).catch((e) => {
        if (!/exists/.test(e.message)) throw e;
      });
    }
    const b = await svc(nodes[1]);

    // Registry: versions are dense, every node agrees at once.
    const v1 = await a.register(name, `s3://models/${name}/1`, { meta: { auc: 0.9 }, schema: 1 });
    const v2 = await b.register(name, `s3://models/${name}/2`, { meta: { auc: 0.92 }, schema: 1 });
    ok(v1 === 1 && v2 === 2, `register on two nodes: versions ${v1}, ${v2}`);
    ok((await b.getModel(name)) === null, 'no production alias before a promotion');
    ok(await a.promote(name, v1, null), 'first promotion (IFNONE) wins');
    ok(!(await b.promote(name, v2, null)), 'a second IFNONE promotion loses');
    const c = await svc(nodes[2]);
    const m = await c.getModel(name);
    ok(m && m.version === 1 && same(JSON.parse(m.meta), { auc: 0.9 }) && m.schema === 1,
      `a third node reads production = v${m && m.version} at once (linearizable)`);

    // Two jobs on two nodes race one promotion: exactly one wins.
    const v3 = await c.register(name, `s3://models/${name}/3`);
    const [won2, won3] = await Promise.all([a.promote(name, v2, 1), b.promote(name, v3, 1)]);
    const winners = [[v2, won2], [v3, won3]].filter(([, w]) => w).map(([v]) => v);
    const prod = (await c.getModel(name)).version;
    ok(winners.length === 1 && prod === winners[0],
      `promotion race v2 vs v3 from 1: winners [${winners}], production now v${prod}`);
    ok(!(await a.promote(name, v1, 1)) && (await c.getModel(name)).version === prod,
      'a promotion with a stale IFVERSION changes nothing');

    // Features: a batch written on one node, read on another via the token.
    const now = Date.now();
    const tOld = now - 60000;
    const tNew = now - 1000;
    const [e1, e2] = [`${run}-1`, `${run}-2`];
    const counts = await a.writeFeatures([[e1, tNew, { clicks_1h: 7, country: 'se' }],
      [e2, tNew, { clicks_1h: 2 }]]);
    ok(same(counts, [2, 1]), `writeFeatures batch (MULTI/EXEC): [${counts}]`);
    const b2 = await svc(nodes[1], { sessionToken: a.token });
    let f = await b2.getFeatures(e1);
    ok(same(f, { clicks_1h: ['7', tNew], country: ['se', tNew] }),
      `another node, session resumed by token, reads its writes: ${JSON.stringify(f)}`);
    const late = await b2.writeFeatures([[e1, tOld, { clicks_1h: 1, country: 'no' }]]);
    ok(same(late, [0]), `a late batch (older event time) makes nothing current: [${late}]`);
    f = await (await svc(nodes[2], { sessionToken: b2.token })).getFeatures(e1);
    ok(same(f.clicks_1h, ['7', tNew]), `the newer value stands on a third node: ${f.clicks_1h}`);
    f = await b2.getFeatures(e1, tOld);
    ok(same(f, { clicks_1h: ['1', tOld], country: ['no', tOld] }),
      `a point-in-time read (ASOF) finds the late values: ${JSON.stringify(f)}`);
    ok(same(await b2.getFeatures(e1, tOld - 1), {}), 'ASOF before any event time: no features');

    // predict: the model strongly, the features causally, and what it used.
    const c2 = await svc(nodes[2], { sessionToken: b2.token });
    const p = await c2.predict(e1);
    ok(p.version === prod && same(p.features, { clicks_1h: '7', country: 'se' }) &&
      same(p.eventTimes, { clicks_1h: tNew, country: tNew }) &&
      p.uri === `s3://models/${name}/${prod}`,
    `predict uses production v${p.version}, features at ${tNew}, score ${p.score}`);

    // Errors are clear, never silent.
    const err = (promise) => promise.then(() => '(no error)', (e) => e.message);
    let msg = await err(c.registry.call('MODEL.GET', `user:${e1}`));
    ok(/need a strong keyspace/.test(msg), `MODEL.* on a causal keyspace: ${msg}`);
    msg = await err(a.promote(name, 99, prod));
    ok(/has no version 99/.test(msg), `promoting a missing version: ${msg}`);
  } catch (e) {
    ok(false, `${e.name}: ${e.message}`);
  } finally {
    for (const s of open) s.close();
  }
  if (failures.length) {
    console.error(`model_service.js --check: ${failures.length} failed`);
    return 1;
  }
  console.log('model_service.js --check: all passed');
  return 0;
}

module.exports = { ConsistentModelService };

if (require.main === module) {
  const i = process.argv.indexOf('--check');
  if (i < 0 || !process.argv[i + 1]) {
    console.error('usage: node model_service.js --check HOST:PORT[,HOST:PORT...]');
    process.exit(2);
  }
  check(process.argv[i + 1].split(',').filter(Boolean)).then((code) => process.exit(code));
}
