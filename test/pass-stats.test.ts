// Every pass reports only the statistics its `stats` schema declares. The types make that so: the
// expected type errors in `typeChecks` stop the build if a pass's log ever takes an undeclared or
// mistyped statistic. Running every pass on the fmnist CNN shows its statistics fit its schema.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Model } from '../src/onnx/ir.js';
import { decodeModel } from '../src/onnx/model-io.js';
import { PASSES, STEP_STATS_SCHEMA, type PassStats } from '../src/passes/index.js';
import { pruneNMPass } from '../src/passes/prune-nm.js';
import { pruneStructuredPass } from '../src/passes/prune-structured.js';
import { ChangeLog, fixedPassContext, type StatsOf } from '../src/pipeline/pass.js';
import { runPipeline } from '../src/pipeline/pipeline.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { logGzip } from '../src/prune/weights.js';
import { batchesFromArrays, readArraysFile, readLabelsFile } from '../src/data/samples.js';
import { toJson } from '../src/report/environment.js';
import type { CompressionReport, StepReport } from '../src/report/schema.js';
import { FMNIST, MODELS, readModel } from './helpers.js';

// Never called: it is here for the compiler.
export function typeChecks(model: Model, step: StepReport<PassStats>): void {
  const nm = new ChangeLog<StatsOf<typeof pruneNMPass>>();
  nm.stat('sparsity', 0.5);
  nm.stat('sparsity:/conv1/Conv', 0.5);
  nm.count('prunedLayers');
  logGzip(nm, 100, model);
  // @ts-expect-error prune.nm declares no such statistic
  nm.stat('channelsBefore', 3);
  // @ts-expect-error sparsity is a number
  nm.stat('sparsity', '50%');
  // @ts-expect-error no undefined either: a statistic is recorded or absent
  nm.stat('sparsity', undefined);
  const structured = new ChangeLog<StatsOf<typeof pruneStructuredPass>>();
  // @ts-expect-error count adds to numeric statistics only
  structured.count('original');
  // @ts-expect-error a helper that records another pass's statistics does not take this log
  logGzip(structured, 100, model);
  // @ts-expect-error a log without declared statistics records none
  new ChangeLog().stat('sparsity', 0.5);
  // a report step's statistics are those of its pass
  if (step.pass === 'prune.nm') {
    const sparsity: number | undefined = step.changes.stats.sparsity;
    void sparsity;
    // @ts-expect-error prune.nm reports no channel counts
    void step.changes.stats.channelsBefore;
  }
}

const membersOf = (schema: TSchema): TSchema[] => (schema.allOf as TSchema[] | undefined) ?? [schema];
/** The named fields of a stats schema. */
const namedFieldsOf = (schema: TSchema) => membersOf(schema).flatMap((m) => Object.entries((m.properties ?? {}) as Record<string, TSchema>));
/** Each field of a stats schema: named fields, and families of fields by key pattern. */
const fieldsOf = (schema: TSchema) => [...namedFieldsOf(schema), ...membersOf(schema).flatMap((m) => Object.entries((m.patternProperties ?? {}) as Record<string, TSchema>))];

const errorsOf = (schema: TSchema, value: unknown) => [...Value.Errors(schema, value)].map((e) => `${e.path || '/'}: ${e.message}`);

describe('pass statistics: declared', () => {
  it('every pass declares its statistics, each with a description', () => {
    for (const pass of Object.values(PASSES)) {
      const fields = fieldsOf(pass.stats);
      assert.ok(fields.length > 0, `${pass.name} declares statistics`);
      for (const [name, field] of fields) assert.ok(typeof field.description === 'string' && field.description.length > 10, `${pass.name}: ${name} has a description`);
    }
  });

  it('the schemas are closed: an undeclared or mistyped statistic fails', () => {
    for (const pass of Object.values(PASSES)) assert.equal(Value.Check(pass.stats, { notDeclared: 1 }), false, pass.name);
    const nm = PASSES['prune.nm']!.stats;
    assert.ok(Value.Check(nm, { sparsity: 0.5, 'sparsity:/conv1/Conv': 0.5 }));
    assert.equal(Value.Check(nm, { sparsity: '50%' }), false);
    assert.equal(Value.Check(nm, { 'sparsity:/conv1/Conv': '50%' }), false);
    assert.equal(Value.Check(nm, { prunedLayers: 1.5 }), false, 'counts are integers');
  });
});

// ---- every pass on the fmnist CNN, with the options that make it report the most

const model0 = decodeModel(readModel(MODELS.fmnist));
const calibration = [...batchesFromArrays(model0, readArraysFile(FMNIST.calibration, model0), { batchSize: 64, maxSamples: 256 })];
const evaluation = [...batchesFromArrays(model0, readArraysFile(FMNIST.inputs, model0), { batchSize: 100, maxSamples: 500 })];
const labels = Array.from(readLabelsFile(FMNIST.labels)).slice(0, 500);

/** Per pass, the options under which, together, it reports every statistic it declares. */
const RUNS: Record<string, Record<string, unknown>[]> = {
  'convert.fp16': [{}],
  'quantize.dynamic': [{ otherWeights: 'int8' }],
  'quantize.static': [{ biasCorrection: true, maxCalibrationBatches: 2, sensitivity: { minSqnrDb: 60, maxExcluded: 1, excludedWeights: 'int8', probeFraction: 0.2 } }],
  'quantize.weights': [{ biasCorrection: true }],
  'factorize.svd': [{ rank: 0.5, opTypes: ['Gemm', 'Conv'], minParams: 0, speedRounds: 2, maxLatencyRatio: 1e-3 }],
  'factorize.tucker': [{ rank: 'vbmf', speedRounds: 2, refineSamples: 128 }],
  'factorize.cp': [{ rank: 8, iterations: 10, speedRounds: 2, refineSamples: 128 }],
  'prune.magnitude': [{ sparsity: 0.5 }],
  'prune.nm': [{}],
  'prune.structured': [
    { ratio: 0.3, steps: 2, maxCalibrationBatches: 2, recovery: { maxRows: 512, rowsPerFeature: 1 } },
    { ratio: 0.3, recovery: { leastSquares: false, batchNorm: true } },
    { ratio: 0.3, recovery: { leastSquares: false, batchNorm: false } },
  ],
};

/** What the fmnist CNN cannot make a pass report: it is opset 13 already (test/quantize-static covers the upgrade). */
const NOT_ON_THIS_FIXTURE: Record<string, string[]> = { 'quantize.static': ['opsetUpgradedFrom'], 'quantize.weights': ['opsetUpgradedFrom'] };
// the factorization passes share one schema: what one of them does not report, another does
const SHARED = [['factorize.svd', 'factorize.tucker', 'factorize.cp']];

describe('pass statistics: what the passes report', () => {
  it('runs every pass', () => assert.deepEqual(Object.keys(RUNS).sort(), Object.keys(PASSES).sort()));

  const reported = new Map<string, Set<string>>();
  for (const [name, runs] of Object.entries(RUNS)) {
    it(`${name}: its statistics validate against its schema`, async () => {
      const pass = PASSES[name]!;
      reported.set(name, new Set());
      for (const options of runs) {
        const ctx = fixedPassContext({ samples: calibration, evaluation, labels, calibration: true });
        await pass.run(decodeModel(readModel(MODELS.fmnist)), Value.Default(pass.schema, { pass: name, ...options }) as never, ctx);
        const stats: object = ctx.changes.stats;
        assert.ok(Object.keys(stats).length > 0, 'it reports statistics');
        assert.deepEqual(errorsOf(pass.stats, stats), [], `${JSON.stringify(options)}: ${JSON.stringify(stats)}`);
        for (const k of Object.keys(stats)) reported.get(name)!.add(k);
      }
    });
  }

  it('every declared statistic is reported by some run (none is declared and never set)', () => {
    const group = (name: string) => SHARED.find((g) => g.includes(name)) ?? [name];
    const never = Object.entries(PASSES).flatMap(([name, pass]) =>
      namedFieldsOf(pass.stats)
        .map(([field]) => field)
        .filter((field) => !group(name).some((n) => reported.get(n)?.has(field)) && !NOT_ON_THIS_FIXTURE[name]?.includes(field))
        .map((field) => `${name}: ${field}`),
    );
    assert.deepEqual(never, []);
  });

  it('a report read back: every step\'s statistics fit its pass', async () => {
    const recipe = parseRecipe({ steps: [{ pass: 'prune.nm' }, { pass: 'quantize.dynamic' }], benchmark: { enabled: false } });
    const { report } = await runPipeline(readModel(MODELS.fmnist), { recipe, samples: evaluation, labels });
    const readBack = JSON.parse(toJson(report)) as CompressionReport;
    assert.deepEqual(readBack.steps.map((s) => s.pass), ['prune.nm', 'quantize.dynamic']);
    for (const s of readBack.steps) assert.deepEqual(errorsOf(STEP_STATS_SCHEMA, { pass: s.pass, stats: s.changes.stats }), [], s.pass);
    const first = report.steps[0]!;
    assert.ok(first.pass === 'prune.nm' && first.changes.stats.sparsity! >= 0.5, 'typed by its pass');
    // the schema tells the passes apart: prune.nm's statistics are not quantize.dynamic's
    assert.equal(Value.Check(STEP_STATS_SCHEMA, { pass: 'quantize.dynamic', stats: readBack.steps[0]!.changes.stats }), false);
  });
});
