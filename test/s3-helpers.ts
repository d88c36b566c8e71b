// A real S3-protocol server for tests: s3rver (npm) on 127.0.0.1 and a free port, its files in a temp
// dir, one bucket. It can be stopped and started again on the same port and files (an outage), and it
// records the requests it served (method and URL) so a test can see what the protocol did.
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Storage } from '../src/service/storage/s3.js';

interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
  httpServer?: Server;
}
const S3rver = createRequire(import.meta.url)('s3rver') as new (opts: object) => S3rverInstance;

/** s3rver's only account: requests must be signed with it (it checks the key id, not the v4 signature). */
export const S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export interface TestS3 {
  endpoint: string;
  bucket: string;
  /** The env a worker or API process needs to use this bucket (under `prefix`). */
  env(prefix?: string): Record<string, string>;
  /** A store on this bucket, as createStorage would make it, with s3rver's credentials. */
  store(prefix?: string, maxStreamBytes?: number): S3Storage;
  /** Requests served since the start (method and URL). */
  requests: string[];
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startS3(bucket = 'modelpress-test'): Promise<TestS3> {
  const directory = mkdtempSync(join(tmpdir(), 'mp-s3rver-'));
  const requests: string[] = [];
  let port = 0;
  let server: S3rverInstance | null = null;
  const stores: S3Storage[] = [];
  const start = async () => {
    const s = new S3rver({ address: '127.0.0.1', port, directory, silent: true, configureBuckets: [{ name: bucket }] });
    port = (await s.run()).port;
    s.httpServer!.on('request', (req: { method: string; url: string }) => requests.push(`${req.method} ${req.url}`));
    server = s;
  };
  const stop = async () => {
    const s = server;
    server = null;
    if (!s) return;
    s.httpServer?.closeAllConnections();
    await s.close();
  };
  await start();
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    bucket,
    requests,
    env: (prefix = '') => ({
      MODELPRESS_STORAGE_URL: `s3://${bucket}${prefix ? `/${prefix}` : ''}`,
      S3_ENDPOINT: endpoint,
      S3_FORCE_PATH_STYLE: '1',
      AWS_ACCESS_KEY_ID: S3_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3_CREDENTIALS.secretAccessKey,
      AWS_REGION: 'us-east-1',
    }),
    store(prefix = '', maxStreamBytes = 1024 ** 3) {
      const s = new S3Storage({ bucket, prefix, endpoint, forcePathStyle: true, region: 'us-east-1', maxStreamBytes, credentials: S3_CREDENTIALS });
      stores.push(s);
      return s;
    },
    stop,
    start,
    async close() {
      for (const s of stores) s.close();
      await stop();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
