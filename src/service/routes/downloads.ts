// Sending a stored model: ETag (its sha256), If-None-Match, Range / If-Range, Content-Disposition,
// streamed from the store; or, with MODELPRESS_PRESIGN=1 and a store that can, a 302 to a short-lived
// presigned URL the store serves (Range included) itself. The job's artifact and a search trial's
// frontier model go out the same way.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ArtifactDownload } from '../jobs/service.js';

/** The response schema of a download route: the bytes, whole or a range, or a problem. */
export const DOWNLOAD_RESPONSES = {
  200: { type: 'string', format: 'binary' },
  206: { type: 'string', format: 'binary' },
  302: { description: 'With MODELPRESS_PRESIGN=1 on an S3 store: Location is a presigned URL of the object, valid for minutes (send Range there).', type: 'null' },
  '4xx': { $ref: 'Problem#' },
  503: { $ref: 'Problem#' },
} as const;

export async function sendDownload(req: FastifyRequest, reply: FastifyReply, artifact: ArtifactDownload): Promise<FastifyReply> {
  const size = artifact.sizeBytes;
  const etag = `"${artifact.sha256}"`;
  reply.header('ETag', etag);
  if (req.headers['if-none-match'] === etag) return reply.code(304).send();
  const url = req.server.config.presignDownloads ? await artifact.presignedUrl() : null;
  if (url) return reply.header('Cache-Control', 'private, no-store').redirect(url, 302); // the URL expires: never cached
  reply.header('Accept-Ranges', 'bytes').header('Content-Disposition', `attachment; filename="${artifact.filename}"`).type('application/octet-stream');
  const range = req.headers.range;
  if (range && (!req.headers['if-range'] || req.headers['if-range'] === etag)) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    let start = m?.[1] ? Number(m[1]) : NaN;
    let end = m?.[2] ? Number(m[2]) : NaN;
    if (m && !m[1] && m[2]) {
      start = Math.max(0, size - Number(m[2]));
      end = size - 1;
    } else if (m && m[1] && !m[2]) end = size - 1;
    if (!m || Number.isNaN(start) || Number.isNaN(end) || start > end || start >= size) {
      reply.header('Content-Range', `bytes */${size}`);
      return reply.code(416).type('application/problem+json').send(JSON.stringify({ type: 'https://modelpress.dev/problems/invalid-input', title: 'Range not satisfiable', status: 416, code: 'invalid_input', detail: `range '${range}' is outside 0-${size - 1}` }));
    }
    end = Math.min(end, size - 1);
    reply.header('Content-Range', `bytes ${start}-${end}/${size}`).header('Content-Length', String(end - start + 1));
    return reply.code(206).send(await artifact.read({ start, end }));
  }
  reply.header('Content-Length', String(size));
  return reply.code(200).send(await artifact.read());
}
