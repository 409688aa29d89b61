// Calls to the gateway's JSON API, with errors turned into sentences a person can act on.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The error of a failed response, in words. */
export async function errorFrom(response) {
  let detail = "";
  try {
    const body = await response.json();
    detail = body.detail || body.error || "";
  } catch {
    detail = "";
  }
  const status = response.status;
  if (status === 429) {
    const wait = response.headers.get("Retry-After");
    const when = wait ? ` Try again in ${formatSeconds(Number(wait))}.` : "";
    return new ApiError(status, `${detail || "Too many requests."}${detail.includes("try again") ? "" : when}`);
  }
  if (status === 401) return new ApiError(status, detail || "Please sign in with your API key.");
  if (status === 404) return new ApiError(status, detail || "Not found: it may have expired or belong to someone else.");
  if (status >= 500) {
    return new ApiError(status, `The server had a problem (${status}). ${detail || "Try again in a moment."}`);
  }
  return new ApiError(status, detail || `The request failed (${status}).`);
}

function formatSeconds(seconds) {
  if (!Number.isFinite(seconds)) return "a moment";
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} hours`;
  return `${Math.round(seconds / 86400)} days`;
}

/** fetch() a JSON endpoint; throws ApiError with a readable message. */
export async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, {
      credentials: "same-origin",
      ...options,
      headers: { Accept: "application/json", ...(options.headers || {}) },
    });
  } catch {
    throw new ApiError(0, "Cannot reach the server: check that it is running and your connection works.");
  }
  if (!response.ok) throw await errorFrom(response);
  return response.json();
}

/** POST a JSON body. */
export function postJson(path, body, method = "POST") {
  return api(path, { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}
