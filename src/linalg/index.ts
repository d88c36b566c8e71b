export * from './matrix.js';
export * from './qr.js';
export * from './eigen.js';
export * from './svd.js';
export * from './tensor.js';
export * from './cp.js';
