// The web app's access to the /v1 API: the key lives in this tab's session storage (never in a URL),
// errors are the API's problem+json, and job changes arrive as server-sent events read with fetch
// (EventSource cannot send the Authorization header), falling back to polling.

const KEY = 'modelpress.key';

export const getKey = (): string | null => sessionStorage.getItem(KEY);
export const setKey = (k: string): void => sessionStorage.setItem(KEY, k);
export const clearKey = (): void => sessionStorage.removeItem(KEY);

export interface Problem {
  code: string;
  detail: string;
  errors?: { path: string; message: string }[];
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem,
  ) {
    super(problem.detail || `HTTP ${status}`);
  }
}

export interface SearchProgress {
  phase?: string;
  trial?: number;
  maxTrials?: number;
  elapsedMs?: number;
  remainingMs?: number;
  best?: { trial?: number; loss?: number; latencyRatio?: number; sizeRatio?: number };
  message?: string;
}

export interface Job {
  id: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';
  modelId: string;
  modelFilename: string | null;
  recipeName: string | null;
  progress: { percent: number; step: number | null; steps: number | null; stepName: string | null; message: string | null; search: SearchProgress | null };
  bestSoFar: { trial: number; sizeBytes: number } | null;
  attempt: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  cancelRequested: boolean;
  error: { code: string; message: string } | null;
  metrics: { warningMessages?: string[] } | null;
  links: Record<string, string>;
}

export interface Trial {
  n: number;
  status: string;
  steps: { pass: string; [k: string]: unknown }[];
  loss: number | null;
  value: number | null;
  latencyRatio: number | null;
  sizeRatio: number | null;
  reason: string | null;
  /** On the final frontier (its model is kept). */
  frontier: boolean;
}

export interface StoredModel {
  id: string;
  sha256: string;
  sizeBytes: number;
  filename: string | null;
  createdAt: string;
}

export async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  const key = getKey();
  if (key) headers.set('authorization', `Bearer ${key}`);
  const res = await fetch(path, { ...init, headers });
  if (!res.ok) {
    const problem = (await res.json().catch(() => ({ code: 'http', detail: `HTTP ${res.status}` }))) as Problem;
    throw new ApiError(res.status, problem);
  }
  const type = res.headers.get('content-type') ?? '';
  return (type.includes('json') ? await res.json() : await res.text()) as T;
}

/** A download that needs the key: fetched, then saved through an object URL. */
export async function download(path: string, fallbackName: string): Promise<void> {
  const key = getKey();
  const res = await fetch(path, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  if (!res.ok) throw new ApiError(res.status, (await res.json().catch(() => ({ code: 'http', detail: `HTTP ${res.status}` }))) as Problem);
  const name = /filename="?([^";]+)"?/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? fallbackName;
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/**
 * Calls `onJob` with every change of the owner's jobs: server-sent events, or polling `poll` every 3 s
 * when the stream cannot be opened or breaks. Returns a function that stops it.
 */
export function watchJobs(onJob: (job: Job) => void, poll: () => Promise<void>, onDeleted?: (id: string) => void): () => void {
  let stopped = false;
  const controller = new AbortController();
  let timer: ReturnType<typeof setInterval> | null = null;
  const fallback = () => {
    if (stopped || timer) return;
    timer = setInterval(() => void poll().catch(() => {}), 3000);
  };
  (async () => {
    let lastId: string | null = null;
    for (let attempt = 0; !stopped && attempt < 5; attempt++) {
      try {
        const headers: Record<string, string> = { authorization: `Bearer ${getKey() ?? ''}`, accept: 'text/event-stream' };
        if (lastId) headers['last-event-id'] = lastId;
        const res = await fetch('/v1/jobs/events', { headers, signal: controller.signal });
        if (!res.ok || !res.body) throw new Error(`events: HTTP ${res.status}`);
        attempt = 0;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let cut: number;
          while ((cut = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            let event = 'message';
            let data = '';
            for (const line of block.split('\n')) {
              if (line.startsWith('event: ')) event = line.slice(7);
              else if (line.startsWith('data: ')) data += line.slice(6);
              else if (line.startsWith('id: ')) lastId = line.slice(4);
            }
            if (event === 'job' && data) onJob(JSON.parse(data) as Job);
            else if (event === 'deleted' && data) onDeleted?.((JSON.parse(data) as { id: string }).id);
          }
        }
      } catch {
        if (stopped) return;
        await new Promise((r) => setTimeout(r, 1000 * (attempt + 1)));
      }
    }
    fallback();
  })();
  return () => {
    stopped = true;
    controller.abort();
    if (timer) clearInterval(timer);
  };
}

/** Uploads a multipart form with progress (fetch cannot report upload progress; XMLHttpRequest can). */
export function uploadForm<T>(path: string, form: FormData, onProgress: (sent: number, total: number) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    const key = getKey();
    if (key) xhr.setRequestHeader('authorization', `Bearer ${key}`);
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.total);
    xhr.onload = () => {
      let body: unknown = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = { code: 'http', detail: xhr.responseText.slice(0, 200) };
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body as T);
      else reject(new ApiError(xhr.status, body as Problem));
    };
    xhr.onerror = () => reject(new ApiError(0, { code: 'network', detail: 'the upload was cut off (network error)' }));
    xhr.send(form);
  });
}
