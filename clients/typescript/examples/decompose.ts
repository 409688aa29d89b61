/**
 * Node: decompose a poster through a running gateway and save its ZIP.
 *
 *   node dist/examples/decompose.js poster.png out/ [http://127.0.0.1:8080]
 *
 * The API key, when the gateway needs one, comes from POSTER_API_KEY. Progress goes to stderr;
 * stdout gets one JSON line: the job, its layers, every progress value seen and the ZIP's path.
 */

import { mkdir, readFile, writeFile } from "node:fs/promises";
import { basename, extname, join } from "node:path";

import { ApiError, createPosterClient, type ProgressEvent } from "../src/index.js";

const [image, outdir, baseUrl = "http://127.0.0.1:8080"] = process.argv.slice(2);
if (!image || !outdir) {
  console.error("usage: decompose.js IMAGE OUTDIR [GATEWAY_URL]");
  process.exit(2);
}

const client = createPosterClient({ baseUrl, apiKey: process.env.POSTER_API_KEY });
const file = new File([await readFile(image)], basename(image));
try {
  const job = await client.submit(file, { formats: ["zip"] });
  const seen: ProgressEvent[] = [];
  const done = await client.wait(job.id, {
    onProgress: (progress) => {
      seen.push(progress);
      console.error(`${progress.stage.padEnd(10)} ${String(progress.progress).padStart(3)}%`);
    },
  });
  if (done.status !== "succeeded") {
    console.error(`${image}: ${done.status}: ${done.error}`);
    process.exit(1);
  }
  await mkdir(outdir, { recursive: true });
  const zipPath = join(outdir, `${basename(image, extname(image))}.zip`);
  await writeFile(zipPath, new Uint8Array(await (await client.download(done.id, "zip")).arrayBuffer()));
  const layers = (done.layers ?? []).map((layer) => ({ index: layer.index, kind: layer.kind, name: layer.name }));
  console.log(JSON.stringify({ job: done.id, layers, progress: seen.map((event) => event.progress), zip: zipPath }));
} catch (error) {
  if (!(error instanceof ApiError)) throw error;
  console.error(`${image}: refused (${error.status} ${error.code}): ${error.detail}`);
  process.exit(1);
}
