/** Domains onnxruntime's default CPU build registers kernels for. */
export const KNOWN_DOMAINS = new Set([
  '',
  'ai.onnx',
  'ai.onnx.ml',
  'com.microsoft',
  'com.microsoft.nchwc',
  'com.microsoft.experimental',
  'com.ms.internal.nhwc',
  'ai.onnx.training',
  'ai.onnx.preview.training',
  'org.pytorch.aten',
]);
