/** The poster-layers HTTP API client for the browser and Node 18+. */

export { createPosterClient, PosterLayersClient } from "./client.js";
export type { ClientOptions, SubmitOptions, Upload, WaitOptions } from "./client.js";
export { ApiError, WaitTimeoutError, retryAfterSeconds } from "./errors.js";
export { readEvents } from "./sse.js";
export type { paths, components, operations } from "./schema.js";
export * from "./types.js";
