/**
 * The JSON the gateway answers, as TypeScript types.
 *
 * The answers are aliases of the components of the gateway's OpenAPI document (src/schema.ts,
 * generated from gateway/schemas.py). Event stream payloads are not in the document, so
 * ProgressEvent mirrors gateway/events.py by hand; a batch's events carry its summary.
 */

import type { components } from "./schema.js";

type Schemas = components["schemas"];

export type Job = Schemas["Job"];
export type JobStatus = Job["status"];
export type JobStage = Job["stage"];
export type Engine = Job["options"]["engine"];
export type ExportFormat = Job["options"]["formats"][number];

export const TERMINAL: ReadonlySet<string> = new Set(["succeeded", "failed", "cancelled"]);

/** One layer of a finished job, bottom to top by `index`. */
export type Layer = Schemas["Layer"];
/** A file of a submission or batch that was refused, and why. */
export type Rejected = Schemas["Rejected"];
/** The answer to `POST /api/v1/jobs`. */
export type Submission = Schemas["Submission"];
/** A batch as `GET /api/v1/batches/{id}` shows it. */
export type Batch = Schemas["Batch"];
/** A batch's n of m (what its events carry): counts of its jobs by status and its progress from 0 to 1. */
export type BatchSummary = Omit<Batch, "jobs" | "rejected" | "links">;
/** Every error answer: `{"error": code, "detail": sentence}`. */
export type ErrorBody = Schemas["Error"];
/** A succeeded job's manifest.json. */
export type Manifest = Schemas["Manifest"];
/** This caller's session, quota and the gateway's limits (`GET /api/v1/session`). */
export type Session = Schemas["Session"];
/** A stored rating (`POST /api/v1/jobs/{id}/feedback`). */
export type FeedbackReceipt = Schemas["FeedbackReceipt"];

/** One event of a job's stream (`event: progress` or `event: end`). */
export interface ProgressEvent {
  /** The stream id; null when the event comes from a status read (polling). */
  event_id: string | null;
  job_id: string;
  status: JobStatus;
  stage: JobStage;
  progress: number;
  message: string;
  time: string | null;
  layer?: { index: number; id: string; name: string };
}
