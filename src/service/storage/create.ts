// The one place a store is chosen: the local directory unless MODELPRESS_STORAGE_URL names a bucket.
// The S3 client is loaded only when it is used.
import type { ServiceConfig } from '../config.js';
import { LocalStorage } from './local.js';
import type { Storage } from './storage.js';

export async function createStorage(config: ServiceConfig): Promise<Storage> {
  const s = config.storage;
  if (s.kind === 'local') return new LocalStorage(s.dir);
  const { S3Storage } = await import('./s3.js');
  return new S3Storage({ bucket: s.bucket, prefix: s.prefix, endpoint: s.endpoint, forcePathStyle: s.forcePathStyle, region: s.region, maxStreamBytes: config.maxUploadBytes });
}
