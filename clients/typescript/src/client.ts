/**
 * The poster-layers client: openapi-fetch over the generated paths (`client.api`), plus helpers
 * to submit, wait (following the event stream, resuming it, or polling) and download.
 */

import createClient, { type Client, type Middleware } from "openapi-fetch";

import { ApiError, WaitTimeoutError } from "./errors.js";
import type { paths } from "./schema.js";
import { readEvents } from "./sse.js";
import {
  TERMINAL,
  type Batch,
  type BatchSummary,
  type Engine,
  type ExportFormat,
  type Job,
  type ProgressEvent,
  type Submission,
} from "./types.js";

const SESSION_COOKIE = "poster_session";

export interface ClientOptions {
  /** The gateway, e.g. "http://127.0.0.1:8080"; "" in a page served by the gateway itself. */
  baseUrl: string;
  /** An API key, sent as X-API-Key; without one, a keyless gateway ties jobs to a session cookie. */
  apiKey?: string;
  /** A fetch to use instead of the global one. */
  fetch?: typeof globalThis.fetch;
}

export interface SubmitOptions {
  /** "auto" or a layer count. */
  layers?: number | "auto";
  engine?: Engine;
  /** Exports to build when the job ends (any format can still be downloaded later). */
  formats?: ExportFormat[];
  /** A describer name, e.g. "local"; empty = the service default. */
  describe?: string;
  /** Run even when the gateway's result cache holds the result. */
  noCache?: boolean;
  /** Edge matting: "off", "guided" or "deep"; empty = the service default. */
  matting?: "" | "off" | "guided" | "deep";
  /** The same key on a retried request gives back the same job(s). */
  idempotencyKey?: string;
}

/** A file to upload: a File (it has a name), or a Blob with the name the gateway checks the bytes against. */
export type Upload = File | { blob: Blob; filename: string };

export interface WaitOptions<T> {
  /** Called once per progress event, in order. */
  onProgress?: (progress: T) => void | Promise<void>;
  /** Give up after this long (WaitTimeoutError); default 10 minutes. */
  timeoutMs?: number;
  /** How often to read the status when the event stream cannot be used; default 1 s. */
  pollIntervalMs?: number;
  /** Connections in a row that deliver no event before switching to polling; default 3. */
  maxIdleConnections?: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Keeps the gateway's session cookie where the runtime does not (Node's fetch has no cookie jar),
 * so a keyless client owns the jobs it submits. A browser keeps the cookie itself and hides
 * Set-Cookie from scripts, so there this does nothing.
 */
function sessionKeeper(): Middleware {
  let cookie = "";
  return {
    onRequest({ request }) {
      if (cookie && !request.headers.has("x-api-key")) request.headers.set("cookie", cookie);
      return request;
    },
    onResponse({ response }) {
      const setCookies = response.headers.getSetCookie?.() ?? [];
      const session = setCookies.find((value) => value.startsWith(`${SESSION_COOKIE}=`));
      if (session) cookie = session.split(";")[0] ?? "";
      return response;
    },
  };
}

function filenameOf(upload: Upload): { blob: Blob; filename: string } {
  return upload instanceof Blob ? { blob: upload, filename: upload.name } : upload;
}

/** What a wait follows: a job's or a batch's events path, its status read, and how its events read. */
interface Followed<T, R> {
  what: string;
  stream: (
    lastEventId: string,
    signal: AbortSignal,
  ) => Promise<{ data?: ReadableStream<Uint8Array> | null; response: Response; error?: unknown }>;
  status: () => Promise<R>;
  fromEvent: (data: unknown) => T;
  fromStatus: (status: R) => T;
  key: (report: T) => string;
  finished: (report: T, eventName: string | undefined) => boolean;
}

export class PosterLayersClient {
  /** The typed openapi-fetch client over every path of the gateway's OpenAPI document. */
  readonly api: Client<paths>;

  constructor(options: ClientOptions) {
    this.api = createClient<paths>({
      baseUrl: options.baseUrl,
      headers: options.apiKey ? { "X-API-Key": options.apiKey } : {},
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
    this.api.use(sessionKeeper());
  }

  /** Uploads one image as a job. A ZIP archive or several images go through submitBatch. */
  async submit(file: Upload, options: SubmitOptions = {}): Promise<Job> {
    const submission = await this.submitBatch([file], options);
    const job = submission.jobs[0];
    if (!job || submission.jobs.length !== 1) {
      throw new Error(`expected one job, the gateway made ${submission.jobs.length}: use submitBatch for archives`);
    }
    return job;
  }

  /** Uploads several images, or ZIP archives of images, as one batch; refused files are in `rejected`. */
  async submitBatch(files: Upload[], options: SubmitOptions = {}): Promise<Submission> {
    const uploads = files.map(filenameOf);
    const fields = {
      file: [] as string[],
      layers: String(options.layers ?? "auto"),
      engine: options.engine ?? "auto",
      describe: options.describe ?? "",
      formats: options.formats ?? [],
      no_cache: options.noCache ?? false,
      matting: options.matting ?? "",
    };
    const { data, error, response } = await this.api.POST("/api/v1/jobs", {
      params: { header: options.idempotencyKey ? { "idempotency-key": options.idempotencyKey } : {} },
      body: fields,
      bodySerializer: (body) => {
        const form = new FormData();
        for (const { blob, filename } of uploads) form.append("file", blob, filename);
        form.append("layers", body.layers);
        form.append("engine", body.engine);
        if (body.describe) form.append("describe", body.describe);
        for (const format of body.formats) form.append("formats", format);
        if (body.no_cache) form.append("no_cache", "true");
        if (body.matting) form.append("matting", body.matting);
        return form;
      },
    });
    if (error !== undefined || !response.ok) throw ApiError.from(response, error);
    return data as Submission;
  }

  /** The job now; ApiError 404 when there is no such job or it is someone else's. */
  async getJob(jobId: string): Promise<Job> {
    const { data, error, response } = await this.api.GET("/api/v1/jobs/{job_id}", {
      params: { path: { job_id: jobId } },
    });
    if (error !== undefined || !response.ok) throw ApiError.from(response, error);
    return data as Job;
  }

  /** Cancels a job (a queued one at once, a running one at its next check). */
  async cancel(jobId: string): Promise<Job> {
    const { data, error, response } = await this.api.DELETE("/api/v1/jobs/{job_id}", {
      params: { path: { job_id: jobId } },
    });
    if (error !== undefined || !response.ok) throw ApiError.from(response, error);
    return data as Job;
  }

  /** Follows a job until it ends and returns it (with its layers once it succeeded); a failed job is returned. */
  async wait(jobId: string, options: WaitOptions<ProgressEvent> = {}): Promise<Job> {
    return this.follow<ProgressEvent, Job>(
      {
        what: `job ${jobId}`,
        stream: (lastEventId, signal) =>
          this.api.GET("/api/v1/jobs/{job_id}/events", {
            params: { path: { job_id: jobId }, header: lastEventId ? { "last-event-id": lastEventId } : {} },
            parseAs: "stream",
            signal,
          }),
        status: () => this.getJob(jobId),
        fromEvent: (data) => data as ProgressEvent,
        fromStatus: (job) => ({
          event_id: null,
          job_id: job.id,
          status: job.status,
          stage: job.stage,
          progress: job.progress,
          message: "",
          time: job.updated_at,
        }),
        key: (event) => `${event.status}/${event.stage}/${event.progress}`,
        finished: (event, name) => name === "end" || TERMINAL.has(event.status),
      },
      options,
      () => this.getJob(jobId),
    );
  }

  /** One of a finished job's exports as a Blob (built on first request when the job did not build it). */
  async download(jobId: string, format: ExportFormat): Promise<Blob> {
    const { data, error, response } = await this.api.GET("/api/v1/jobs/{job_id}/exports/{fmt}", {
      params: { path: { job_id: jobId, fmt: format } },
      parseAs: "blob",
    });
    if (error !== undefined || !response.ok) throw ApiError.from(response, error);
    return data as Blob;
  }

  /** One layer as a full-canvas RGBA PNG. */
  async downloadLayer(jobId: string, index: number): Promise<Blob> {
    const { data, error, response } = await this.api.GET("/api/v1/jobs/{job_id}/layers/{index}.png", {
      params: { path: { job_id: jobId, index } },
      parseAs: "blob",
    });
    if (error !== undefined || !response.ok) throw ApiError.from(response, error);
    return data as Blob;
  }

  /** A batch's progress (n of m), status and jobs. */
  async getBatch(batchId: string): Promise<Batch> {
    const { data, error, response } = await this.api.GET("/api/v1/batches/{batch_id}", {
      params: { path: { batch_id: batchId } },
    });
    if (error !== undefined || !response.ok) throw ApiError.from(response, error);
    return data as Batch;
  }

  /** Follows a batch until every job in it ended; `onProgress` gets its summary whenever it changed. */
  async waitBatch(batchId: string, options: WaitOptions<BatchSummary> = {}): Promise<Batch> {
    return this.follow<BatchSummary, Batch>(
      {
        what: `batch ${batchId}`,
        stream: (_lastEventId, signal) =>
          this.api.GET("/api/v1/batches/{batch_id}/events", {
            params: { path: { batch_id: batchId } },
            parseAs: "stream",
            signal,
          }),
        status: () => this.getBatch(batchId),
        fromEvent: (data) => data as BatchSummary,
        fromStatus: (batch) => batch,
        key: (summary) => `${summary.status}/${summary.done}/${summary.running}/${summary.queued}/${summary.progress}`,
        finished: (summary, name) => name === "end" || summary.done >= summary.total,
      },
      { timeoutMs: 30 * 60_000, ...options },
      () => this.getBatch(batchId),
    );
  }

  /** One ZIP of every succeeded job's results in the batch, with batch.json. */
  async downloadBatch(batchId: string): Promise<Blob> {
    const { data, error, response } = await this.api.GET("/api/v1/batches/{batch_id}/results.zip", {
      params: { path: { batch_id: batchId } },
      parseAs: "blob",
    });
    if (error !== undefined || !response.ok) throw ApiError.from(response, error);
    return data as Blob;
  }

  /**
   * Follows the event stream, resuming after the last event when a connection drops; after
   * `maxIdleConnections` connections in a row without an event, or an answer that is not an event
   * stream, polls the status instead. 4xx answers are thrown; transport errors and 5xx retried.
   */
  private async follow<T, R>(followed: Followed<T, R>, options: WaitOptions<T>, final: () => Promise<R>): Promise<R> {
    const timeoutMs = options.timeoutMs ?? 600_000;
    const deadline = Date.now() + timeoutMs;
    const maxIdle = options.maxIdleConnections ?? 3;
    let lastEventId = "";
    let lastKey = "";
    let idle = 0;
    let retryMs = 1000;
    let polling = false;
    let lastError: unknown;
    const remaining = () => {
      const left = deadline - Date.now();
      if (left <= 0) throw new WaitTimeoutError(followed.what, timeoutMs, lastError);
      return left;
    };
    const report = async (value: T, fromStream: boolean) => {
      const key = followed.key(value);
      if (!fromStream && key === lastKey) return;
      lastKey = key;
      await options.onProgress?.(value);
    };

    for (;;) {
      if (polling) {
        try {
          const status = await followed.status();
          const value = followed.fromStatus(status);
          await report(value, false);
          if (followed.finished(value, undefined)) return status;
        } catch (error) {
          if (error instanceof ApiError && error.status < 500) throw error;
          lastError = error;
        }
        await sleep(Math.min(options.pollIntervalMs ?? 1000, remaining()));
        continue;
      }
      let delivered = 0;
      try {
        const { data, response, error } = await followed.stream(lastEventId, AbortSignal.timeout(remaining()));
        const isStream = response.ok && (response.headers.get("content-type") ?? "").startsWith("text/event-stream");
        if (!response.ok && response.status < 500) throw ApiError.from(response, error);
        if (response.ok && !isStream) {
          polling = true;
          continue;
        }
        if (isStream && data) {
          for await (const message of readEvents(data, (ms) => (retryMs = ms))) {
            if (message.id) lastEventId = message.id;
            if (message.event !== "progress" && message.event !== "end") continue;
            delivered += 1;
            const value = followed.fromEvent(JSON.parse(message.data));
            await report(value, true);
            if (followed.finished(value, message.event)) return await final();
          }
        }
      } catch (error) {
        if (error instanceof ApiError) throw error;
        lastError = error;
      }
      if (delivered) {
        idle = 0;
        continue;
      }
      idle += 1;
      if (idle >= maxIdle) polling = true;
      else await sleep(Math.min(retryMs, remaining()));
    }
  }
}

/** A client of one gateway: `createPosterClient({ baseUrl: "http://127.0.0.1:8080", apiKey })`. */
export function createPosterClient(options: ClientOptions): PosterLayersClient {
  return new PosterLayersClient(options);
}
