/** Errors: the gateway's `{"error": code, "detail": sentence}` with its HTTP status, and waits that ran out. */

export class ApiError extends Error {
  override readonly name = "ApiError";

  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly requestId: string | null = null,
    /** Seconds to wait before trying again (429 answers), when the gateway said. */
    readonly retryAfter: number | null = null,
  ) {
    super(`${status} ${code}: ${detail}`);
  }

  /** The typed error for an error answer; `body` is what openapi-fetch parsed (JSON, or text for other bodies). */
  static from(response: Response, body: unknown): ApiError {
    const json = typeof body === "object" && body !== null ? (body as Record<string, unknown>) : null;
    const code = typeof json?.error === "string" ? json.error : `http_${response.status}`;
    const detail =
      typeof json?.detail === "string"
        ? json.detail
        : typeof body === "string" && body.trim()
          ? body.trim().slice(0, 500)
          : `HTTP ${response.status}`;
    return new ApiError(
      response.status,
      code,
      detail,
      response.headers.get("x-request-id"),
      retryAfterSeconds(response.headers.get("retry-after")),
    );
  }
}

export class WaitTimeoutError extends Error {
  override readonly name = "WaitTimeoutError";

  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    override readonly cause?: unknown,
  ) {
    super(`${what} did not finish within ${timeoutMs / 1000} s`);
  }
}

/** Seconds from a Retry-After header: delta seconds or an HTTP date. */
export function retryAfterSeconds(value: string | null): number | null {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const when = Date.parse(value);
  return Number.isNaN(when) ? null : Math.max(0, (when - Date.now()) / 1000);
}
