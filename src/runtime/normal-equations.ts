// XᵀX and XᵀY of a least-squares problem, summed block by block in float64 by onnxruntime's GEMM.
// A refit of a 3×3 conv with 512 input channels has 4,609 features: its Gram matrix over a few
// thousand rows is ~10¹¹ multiply-adds, minutes in JavaScript and seconds in MLAS.
import { create } from '@bufbuild/protobuf';
import { GraphProtoSchema, ModelProtoSchema, OperatorSetIdProtoSchema } from 'onnx-buf';
import * as ort from 'onnxruntime-node';
import { DataType as DT } from '../onnx/dtypes.js';
import { encodeModel, importModel } from '../onnx/model-io.js';

/** The model [X (r×d), Y (r×m)] → [XᵀX (d×d), XᵀY (d×m)], float64 throughout. */
function normalEquationsModel(): Uint8Array {
  const model = importModel(
    create(ModelProtoSchema, {
      irVersion: 8n,
      opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n })],
      graph: create(GraphProtoSchema, { name: 'normal_equations' }),
    }),
  );
  const g = model.graph;
  const x = g.createValue('x');
  x.setTensorType(DT.DOUBLE, ['rows', 'features']);
  const y = g.createValue('y');
  y.setTensorType(DT.DOUBLE, ['rows', 'targets']);
  g.inputs = [x, y];
  const [xt] = g.addNode('Transpose', [x], 1, { name: 'xt' }).outputs;
  const [gram] = g.addNode('MatMul', [xt!, x], 1, { name: 'gram' }).outputs;
  const [cross] = g.addNode('MatMul', [xt!, y], 1, { name: 'cross' }).outputs;
  gram!.setTensorType(DT.DOUBLE, ['features', 'features']);
  cross!.setTensorType(DT.DOUBLE, ['features', 'targets']);
  g.outputs = [gram!, cross!];
  return encodeModel(model);
}

let modelBytes: Uint8Array | undefined;

/** Running sums G = XᵀX (d×d, both triangles) and C = XᵀY (d×m) over blocks of rows. */
export class NormalEquations {
  readonly G: Float64Array;
  readonly C: Float64Array;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly d: number,
    readonly m: number,
  ) {
    this.G = new Float64Array(d * d);
    this.C = new Float64Array(d * m);
  }

  static async open(d: number, m: number): Promise<NormalEquations> {
    modelBytes ??= normalEquationsModel();
    return new NormalEquations(await ort.InferenceSession.create(modelBytes), d, m);
  }

  /** Adds `rows` rows: x is rows×d and y rows×m, row-major. */
  async add(x: Float64Array, y: Float64Array, rows: number): Promise<void> {
    if (rows === 0) return;
    const out = await this.session.run({ x: new ort.Tensor('float64', x.subarray(0, rows * this.d), [rows, this.d]), y: new ort.Tensor('float64', y.subarray(0, rows * this.m), [rows, this.m]) });
    const [gram, cross] = this.session.outputNames.map((name) => out[name]!.data as Float64Array);
    addInto(this.G, gram!);
    addInto(this.C, cross!);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function addInto(sum: Float64Array, part: Float64Array): void {
  for (let i = 0; i < sum.length; i++) sum[i]! += part[i]!;
}
