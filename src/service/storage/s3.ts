// The S3-compatible store (AWS S3, MinIO, Ceph, R2, …), selected by MODELPRESS_STORAGE_URL=s3://bucket/prefix:
// API processes and workers on any number of machines share it. Uploads stream up as multipart uploads
// with their sha256 computed on the way; objects are read with ranges; a worker gets a private local copy
// of an input only while it runs. The prefix is this store's business alone: keys never carry it.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { ModelpressError, ServiceError } from '../../errors.js';
import { checkKey, hashingTap, newTempKey, type Storage, type StoredObject } from './storage.js';

/** How long a presigned download URL works. */
export const PRESIGN_SECONDS = 300;
/** S3's smallest multipart part (but the last) and most parts per upload. */
const MIN_PART_BYTES = 5 * 1024 * 1024;
const MAX_PARTS = 10_000;
/** The largest object one CopyObject may copy; larger ones are copied part by part. */
const MAX_COPY_BYTES = 5 * 1024 ** 3;
const COPY_PART_BYTES = 1024 ** 3;

export interface S3StorageOptions {
  bucket: string;
  /** Prepended to every key inside the bucket ('' for none). */
  prefix: string;
  /** An S3-compatible server (MinIO, s3rver…); null: AWS. */
  endpoint: string | null;
  forcePathStyle: boolean;
  /** null: the SDK's own lookup (AWS_REGION, the profile), or us-east-1 for a custom endpoint. */
  region: string | null;
  /** The largest stream `putStream` must take (MAX_UPLOAD_BYTES): it sizes the parts so 10,000 of them hold it. */
  maxStreamBytes: number;
  /** Explicit credentials; by default the SDK's chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, an instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

/** The part size that lets an object of `bytes` fit S3's part count. */
function partSizeFor(bytes: number): number {
  return Math.max(MIN_PART_BYTES, Math.ceil(bytes / MAX_PARTS));
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } } | null;
  return !!e && (e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404);
}

export class S3Storage implements Storage {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly where: string;
  private readonly streamPartBytes: number;
  /** Uploads being written now, and how each ends: what a shutdown stops and waits for. */
  private readonly inFlight = new Map<Upload, Promise<unknown>>();

  constructor(opts: S3StorageOptions) {
    this.bucket = opts.bucket;
    this.prefix = opts.prefix.replace(/^\/+|\/+$/g, '');
    this.streamPartBytes = partSizeFor(opts.maxStreamBytes);
    const region = opts.region ?? (opts.endpoint ? 'us-east-1' : undefined);
    this.client = new S3Client({
      ...(region ? { region } : {}),
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      forcePathStyle: opts.forcePathStyle,
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
      // checksums only where S3 requires them: S3-compatible servers differ in the newer (trailing) ones
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { connectionTimeout: 5000 },
    });
    let endpoint = opts.endpoint;
    if (endpoint) {
      const u = new URL(endpoint);
      u.username = u.password = '';
      endpoint = u.toString().replace(/\/$/, '');
    }
    this.where = `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ''}${endpoint ? ` @ ${endpoint}` : region ? ` (${region})` : ''}`;
  }

  /** The object name in the bucket. */
  private nameOf(key: string): string {
    checkKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  /**
   * Everything the store says no to, but "not found", is a 503 for the client. The reason it gets is a
   * code (ECONNREFUSED, AccessDenied, SlowDown…); the store's address stays in the cause, for the log.
   */
  private failure(err: unknown, what: string): Error {
    if (err instanceof ModelpressError) return err;
    const e = err as { name?: string; code?: string };
    const why = e.code ?? (e.name && e.name !== 'Error' ? e.name : 'error');
    return new ServiceError('unavailable', `the object store could not ${what} (${why}); try again shortly`, { cause: err, retryAfterSec: 5 });
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.failure(err, what);
    }
  }

  describe(): string {
    return this.where;
  }

  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const e = err as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
      const status = e.$metadata?.httpStatusCode;
      throw new Error(`bucket '${this.bucket}': ${status === 404 ? 'no such bucket' : status === 403 ? 'access denied (check the credentials)' : (e.code ?? e.name ?? 'error')}${e.message && e.message !== 'UnknownError' ? ` (${e.message})` : ''}`, { cause: err });
    }
  }

  async putStream(source: Readable): Promise<StoredObject> {
    const key = newTempKey();
    const hashing = hashingTap();
    const upload = new Upload({ client: this.client, params: { Bucket: this.bucket, Key: this.nameOf(key), Body: hashing.tap }, partSize: this.streamPartBytes, queueSize: 2 });
    const feeding = pipeline(source, hashing.tap);
    const uploading = upload.done();
    // whichever side fails first stops the other: a dead store stops reading the request, a cut request stops the upload
    let first: 'source' | 'store' | null = null;
    feeding.catch(() => {
      first ??= 'source';
      void upload.abort();
    });
    uploading.catch(() => {
      first ??= 'store';
      hashing.tap.destroy(new Error('the upload to the object store stopped'));
    });
    const settled = Promise.allSettled([feeding, uploading]);
    this.inFlight.set(upload, settled);
    const [fed, uploaded] = await settled;
    this.inFlight.delete(upload);
    if (fed.status === 'rejected' || uploaded.status === 'rejected') {
      await this.delete(key).catch(() => {}); // a single-part upload may have landed; a multipart one is aborted
      if (first === 'source' && fed.status === 'rejected') throw fed.reason;
      throw this.failure(uploaded.status === 'rejected' ? uploaded.reason : (fed as PromiseRejectedResult).reason, 'store the upload');
    }
    return { key, ...hashing.digest() };
  }

  async promote(from: string, to: string): Promise<void> {
    if ((await this.size(to)) !== null) {
      await this.delete(from); // identical content already stored
      return;
    }
    const size = await this.size(from);
    if (size === null) throw new ModelpressError('stored_object_missing', `stored object '${from}' is missing from the store`);
    await this.call('store the object', () => (size <= MAX_COPY_BYTES ? this.copy(from, to) : this.copyInParts(from, to, size)));
    await this.delete(from);
  }

  private async copy(from: string, to: string): Promise<void> {
    await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: this.nameOf(to), CopySource: this.copySource(from) }));
  }

  private copySource(key: string): string {
    return `${this.bucket}/${this.nameOf(key).split('/').map(encodeURIComponent).join('/')}`;
  }

  /** Server-side copy of an object past CopyObject's 5 GB limit: a multipart upload of copied ranges. */
  private async copyInParts(from: string, to: string, size: number): Promise<void> {
    const Key = this.nameOf(to);
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key }));
    try {
      const parts: { ETag: string; PartNumber: number }[] = [];
      for (let start = 0, n = 1; start < size; start += COPY_PART_BYTES, n++) {
        const end = Math.min(start + COPY_PART_BYTES, size) - 1;
        const r = await this.client.send(new UploadPartCopyCommand({ Bucket: this.bucket, Key, UploadId, PartNumber: n, CopySource: this.copySource(from), CopySourceRange: `bytes=${start}-${end}` }));
        parts.push({ ETag: r.CopyPartResult!.ETag!, PartNumber: n });
      }
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId })).catch(() => {});
      throw err;
    }
  }

  async putFile(key: string, path: string): Promise<void> {
    if ((await this.size(key)) !== null) return;
    const { size } = await stat(path);
    // a multipart upload becomes visible only when complete: the key never shows a partial object
    const upload = new Upload({ client: this.client, params: { Bucket: this.bucket, Key: this.nameOf(key), Body: createReadStream(path) }, partSize: partSizeFor(size), queueSize: 4 });
    await this.call('store the file', () => upload.done());
  }

  async withLocalCopy<T>(key: string, fn: (path: string) => Promise<T>): Promise<T> {
    const dir = await mkdtemp(join(tmpdir(), 'modelpress-copy-')); // mode 0700: this process's only
    try {
      const path = join(dir, basename(checkKey(key))); // the key's extension stays: readers pick the format by it
      const body = await this.read(key);
      await this.call('read the object', () => pipeline(body, createWriteStream(path, { mode: 0o600 })));
      return await fn(path);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async list(prefix: string): Promise<{ key: string; modifiedAt: Date }[]> {
    const folder = `${this.nameOf(prefix)}/`;
    const strip = this.prefix ? this.prefix.length + 1 : 0;
    const out: { key: string; modifiedAt: Date }[] = [];
    let token: string | undefined;
    do {
      const page = await this.call('list objects', () => this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: folder, ...(token ? { ContinuationToken: token } : {}) })));
      for (const o of page.Contents ?? []) if (o.Key && !o.Key.endsWith('/')) out.push({ key: o.Key.slice(strip), modifiedAt: o.LastModified ?? new Date(0) });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async discardInFlight(): Promise<void> {
    const running = [...this.inFlight];
    for (const [upload] of running) await upload.abort();
    await Promise.all(running.map(([, settled]) => settled)); // each putStream deletes its temporary object
  }

  async read(key: string, range?: { start: number; end: number }): Promise<Readable> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.nameOf(key), ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }));
      return res.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) throw new ModelpressError('stored_object_missing', `stored object '${key}' is missing from the store`, { cause: err });
      throw this.failure(err, 'read the object');
    }
  }

  async size(key: string): Promise<number | null> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.nameOf(key) }));
      return head.ContentLength ?? 0;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw this.failure(err, 'look up the object');
    }
  }

  async delete(key: string): Promise<void> {
    await this.call('delete the object', () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.nameOf(key) })));
  }

  presignedUrl(key: string, filename: string): Promise<string | null> {
    const get = new GetObjectCommand({ Bucket: this.bucket, Key: this.nameOf(key), ResponseContentDisposition: `attachment; filename="${filename.replace(/["\\\r\n]/g, '_')}"` });
    return this.call('sign a download', () => getSignedUrl(this.client, get, { expiresIn: PRESIGN_SECONDS }));
  }

  /** Closes the client's connections. */
  close(): void {
    this.client.destroy();
  }
}
