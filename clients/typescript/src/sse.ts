/** Server-Sent Events over fetch: works where EventSource cannot send headers (an API key), and in Node. */

import { EventSourceParserStream, type EventSourceMessage } from "eventsource-parser/stream";

/** The events of an event-stream body, in order; `onRetry` hears the server's reconnection delay. */
export async function* readEvents(
  body: ReadableStream<Uint8Array>,
  onRetry?: (milliseconds: number) => void,
): AsyncGenerator<EventSourceMessage> {
  const reader = body
    .pipeThrough(new TextDecoderStream() as unknown as TransformStream<Uint8Array, string>)
    .pipeThrough(new EventSourceParserStream({ onRetry }))
    .getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    // Stops the response when the caller leaves early (the job ended, or it gave up).
    await reader.cancel().catch(() => undefined);
  }
}
