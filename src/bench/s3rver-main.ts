// s3rver (a real S3-protocol server, an npm devDependency) in its own process for the benchmarks, so
// its work is not counted in the process that measures: `node s3rver-main.js <dir> <bucket>`.
// Listens on 127.0.0.1 and a free port and prints `s3rver on <port>` when it is ready.
import { createRequire } from 'node:module';

interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
const S3rver = createRequire(import.meta.url)('s3rver') as new (opts: object) => S3rverInstance;

const [directory, bucket] = process.argv.slice(2);
if (!directory || !bucket) {
  process.stderr.write('usage: s3rver-main.js <dir> <bucket>\n');
  process.exit(2);
}
const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true, configureBuckets: [{ name: bucket }] });
const { port } = await server.run();
process.stdout.write(`s3rver on ${port}\n`);
const stop = () => void server.close().finally(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
