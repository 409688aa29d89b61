// poster-layers web app: upload, live progress over SSE, the result with layer editing, downloads, feedback.
import { api, errorFrom, postJson } from "./api.js";
import { Editor } from "./editor.js";

const $ = (id) => document.getElementById(id);
const STAGES = {
  queued: "Waiting in the queue",
  decompose: "Finding layers",
  matting: "Cleaning edges",
  describe: "Describing layers",
  export: "Writing files",
  done: "Done",
};
const RECENT_KEY = "poster-layers:recent";
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

let current = null; // the job shown in the result view
const editor = new Editor($("canvas"), () => syncControls());

function show(element, text) {
  element.textContent = text || "";
  element.hidden = !text;
}

// ---- session and limits -------------------------------------------------------------------

async function loadSession() {
  const session = await api("/api/v1/session");
  const limits = session.limits;
  const layers = $("opt-layers");
  for (let n = 1; n <= Math.min(limits.max_layers, 30); n++) layers.add(new Option(String(n), String(n)));
  const megabytes = (limits.max_upload_bytes / 2 ** 20).toFixed(0);
  $("limits-note").textContent =
    `PNG, JPEG or WebP (or a ZIP of them), up to ${megabytes} MB each, ${limits.max_batch_files} files at a time`;
  $("signin").hidden = !(session.keys_required && !session.signed_in);
  $("upload").hidden = session.keys_required && !session.signed_in;
  const quota = session.quota ? ` · ${session.quota.remaining} of ${session.quota.limit} jobs left this month` : "";
  $("account").textContent = session.signed_in ? `${session.plan ? `${session.plan} plan` : "Local session"}${quota}` : "";
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await postJson("/api/v1/session", { api_key: $("api-key").value });
    $("api-key").value = "";
    await loadSession();
    restoreRecent();
  } catch (error) {
    show($("upload-error"), error.message);
    $("upload").hidden = false;
  }
});

// ---- uploads ------------------------------------------------------------------------------

async function upload(files) {
  show($("upload-error"), "");
  if (!files.length) return;
  const form = new FormData();
  for (const file of files) form.append("file", file, file.name);
  form.append("layers", $("opt-layers").value);
  form.append("engine", $("opt-engine").value);
  let response;
  try {
    response = await fetch("/api/v1/jobs", { method: "POST", body: form, credentials: "same-origin" });
  } catch {
    show($("upload-error"), "Cannot reach the server: check that it is running and your connection works.");
    return;
  }
  if (!response.ok) {
    show($("upload-error"), (await errorFrom(response)).message);
    return;
  }
  const body = await response.json();
  for (const job of body.jobs) track(job);
  if (body.batch_id) trackBatch(body.batch_id, files.length === 1 ? files[0].name : `${body.jobs.length} images`);
  if (body.rejected.length) {
    show($("upload-error"), body.rejected.map((item) => item.detail).join(" "));
  }
  loadSession().catch(() => {});
}

const dropzone = $("dropzone");
$("file-input").addEventListener("change", (event) => {
  upload([...event.target.files]);
  event.target.value = "";
});
for (const name of ["dragenter", "dragover"]) {
  dropzone.addEventListener(name, (event) => {
    event.preventDefault();
    dropzone.classList.add("over");
  });
}
for (const name of ["dragleave", "drop"]) {
  dropzone.addEventListener(name, () => dropzone.classList.remove("over"));
}
dropzone.addEventListener("drop", (event) => {
  event.preventDefault();
  upload([...event.dataTransfer.files]);
});

// ---- jobs and their progress --------------------------------------------------------------

function remember(job) {
  const recent = JSON.parse(localStorage.getItem(RECENT_KEY) || "[]").filter((id) => id !== job.id);
  recent.unshift(job.id);
  localStorage.setItem(RECENT_KEY, JSON.stringify(recent.slice(0, 20)));
}

function render(card, state) {
  const { status, stage, progress } = state;
  card.className = `job ${status}`;
  const label =
    status === "succeeded" ? "Done" :
    status === "failed" ? "Failed" :
    status === "cancelled" ? "Cancelled" :
    STAGES[stage] || stage;
  card.querySelector(".job-stage").textContent = TERMINAL.has(status) ? label : `${label} · ${progress}%`;
  const bar = card.querySelector(".bar");
  bar.setAttribute("aria-valuenow", String(progress));
  bar.setAttribute("aria-label", `${card.querySelector(".job-name").textContent}: ${label}`);
  bar.querySelector("span").style.width = `${status === "succeeded" ? 100 : progress}%`;
  card.querySelector(".job-open").hidden = status !== "succeeded";
  card.querySelector(".job-cancel").hidden = TERMINAL.has(status);
}

/** A card for the job, kept up to date from its event stream. */
function track(job) {
  remember(job);
  const existing = document.querySelector(`.job[data-id="${job.id}"]`);
  if (existing) existing.remove();
  const card = $("job-template").content.firstElementChild.cloneNode(true);
  card.dataset.id = job.id;
  card.querySelector(".job-name").textContent =
    job.parent_layer_id ? `${job.filename} (split)` : job.filename || job.id;
  $("jobs").prepend(card);
  render(card, job);
  card.querySelector(".job-open").addEventListener("click", () => openResult(job.id));
  card.querySelector(".job-cancel").addEventListener("click", async () => {
    try {
      render(card, await api(`/api/v1/jobs/${job.id}`, { method: "DELETE" }));
    } catch (error) {
      show(card.querySelector(".job-error"), error.message);
    }
  });
  if (TERMINAL.has(job.status)) {
    finish(card, job.id);
    return;
  }
  const source = new EventSource(`/api/v1/jobs/${job.id}/events`);
  const onEvent = (message) => render(card, JSON.parse(message.data));
  source.addEventListener("progress", onEvent);
  source.addEventListener("end", (message) => {
    onEvent(message);
    source.close();
    finish(card, job.id);
  });
  source.addEventListener("error", () => {
    // The browser reconnects by itself (with Last-Event-ID); a closed stream means it gave up.
    if (source.readyState === EventSource.CLOSED) finish(card, job.id);
  });
}

// ---- batches: n of m done, one ZIP of all results ------------------------------------------

function renderBatch(card, summary) {
  const { done, total, succeeded } = summary;
  const percent = Math.round(summary.progress * 100);
  card.className = `batch ${summary.status}`;
  card.querySelector(".batch-count").textContent = `${done} of ${total} done`;
  const bar = card.querySelector(".bar");
  bar.setAttribute("aria-valuenow", String(percent));
  bar.setAttribute("aria-label", `${card.querySelector(".batch-name").textContent}: ${done} of ${total} done`);
  bar.querySelector("span").style.width = `${percent}%`;
  // The ZIP holds every succeeded job's results: offered once all jobs ended and one succeeded.
  card.querySelector(".batch-download").hidden = !(done === total && succeeded > 0);
}

/** A card for a batch with its n of m and, once it ended, a link to one ZIP of all results. */
function trackBatch(id, name) {
  const card = $("batch-template").content.firstElementChild.cloneNode(true);
  card.dataset.batch = id;
  card.querySelector(".batch-name").textContent = `Batch: ${name}`;
  const link = card.querySelector(".batch-download");
  link.href = `/api/v1/batches/${id}/results.zip`;
  $("jobs").prepend(card);
  const source = new EventSource(`/api/v1/batches/${id}/events`);
  const onEvent = (message) => renderBatch(card, JSON.parse(message.data));
  source.addEventListener("progress", onEvent);
  source.addEventListener("end", (message) => {
    onEvent(message);
    source.close();
  });
  source.addEventListener("error", async () => {
    if (source.readyState !== EventSource.CLOSED) return;
    try {
      renderBatch(card, await api(`/api/v1/batches/${id}`));
    } catch {
      // Expired or gone: the card keeps what it last showed.
    }
  });
}

async function finish(card, id) {
  try {
    const job = await api(`/api/v1/jobs/${id}`);
    render(card, job);
    const error = job.status === "failed" ? `Failed: ${job.error || "no reason given"}` : "";
    show(card.querySelector(".job-error"), error);
  } catch (error) {
    show(card.querySelector(".job-error"), error.message);
  }
}

async function restoreRecent() {
  const recent = JSON.parse(localStorage.getItem(RECENT_KEY) || "[]");
  const kept = [];
  for (const id of recent.slice().reverse()) {
    try {
      track(await api(`/api/v1/jobs/${id}`));
      kept.unshift(id);
    } catch {
      // Expired or another session's: forget it.
    }
  }
  localStorage.setItem(RECENT_KEY, JSON.stringify(kept));
}

// ---- the result view ----------------------------------------------------------------------

async function openResult(id) {
  show($("result-error"), "");
  let job;
  try {
    job = await api(`/api/v1/jobs/${id}`);
  } catch (error) {
    show($("upload-error"), error.message);
    return;
  }
  current = job;
  $("result").hidden = false;
  $("result-title").textContent = `Result: ${job.filename}`;
  const quality = job.quality_score == null ? "" : ` · quality ${Math.round(job.quality_score)}/100`;
  $("result-meta").textContent = `${job.layer_count} layers · ${job.width}×${job.height} · ${job.engine}${quality}`;
  for (const format of ["psd", "pptx", "svg", "zip"]) $(`dl-${format}`).href = job.links.exports[format];
  for (const id of ["fb-good", "fb-bad"]) $(id).setAttribute("aria-pressed", "false");
  $("fb-comment-form").hidden = true;
  show($("fb-status"), "");
  try {
    await editor.load(job);
  } catch (error) {
    show($("result-error"), `Could not load the layers: ${error.message}`);
  }
  renderLayers();
  $("result").scrollIntoView({ behavior: "smooth", block: "start" });
}

function renderLayers() {
  const list = $("layers");
  list.replaceChildren();
  // The list shows the top of the stack first, as design tools do.
  for (const item of editor.stack.slice().reverse()) {
    const { layer } = item;
    const row = $("layer-template").content.firstElementChild.cloneNode(true);
    row.dataset.index = String(layer.index);
    row.classList.toggle("selected", editor.selected === layer.index);
    row.classList.toggle("hidden-layer", !item.visible);
    const visible = row.querySelector(".visible");
    visible.checked = item.visible;
    visible.setAttribute("aria-label", `Show ${layer.name}`);
    visible.addEventListener("change", () => {
      editor.setVisible(layer.index, visible.checked);
      row.classList.toggle("hidden-layer", !visible.checked);
    });
    const thumb = row.querySelector(".thumb");
    thumb.src = layer.links.thumbnail;
    const name = row.querySelector(".layer-name");
    name.textContent = layer.name;
    name.setAttribute("aria-pressed", String(editor.selected === layer.index));
    name.addEventListener("click", () => selectLayer(layer.index));
    row.querySelector(".kind").textContent = layer.kind;
    const text = row.querySelector(".layer-text");
    if (layer.text) {
      text.textContent = layer.text;
      text.hidden = false;
    }
    row.querySelector(".desc").textContent = layer.description || "";
    const solo = row.querySelector(".solo");
    solo.setAttribute("aria-pressed", String(editor.soloed === layer.index));
    solo.setAttribute("aria-label", `Solo ${layer.name}`);
    solo.addEventListener("click", () => {
      editor.toggleSolo(layer.index);
      renderLayers();
    });
    row.querySelector(".up").addEventListener("click", () => restack(layer.index, +1, ".up"));
    row.querySelector(".down").addEventListener("click", () => restack(layer.index, -1, ".down"));
    const png = row.querySelector(".png");
    png.href = layer.links.png;
    png.setAttribute("aria-label", `Download ${layer.name} as PNG`);
    row.querySelector(".split").addEventListener("click", () => split(layer));
    row.querySelector(".split").setAttribute("aria-label", `Split ${layer.name} into more layers`);
    wireDrag(row, layer.index);
    list.append(row);
  }
}

function restack(index, delta, focusClass) {
  editor.step(index, delta);
  renderLayers();
  document.querySelector(`.layer[data-index="${index}"] ${focusClass}`)?.focus();
}

let dragged = null;
function wireDrag(row, index) {
  row.addEventListener("dragstart", (event) => {
    dragged = index;
    row.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", String(index));
  });
  row.addEventListener("dragend", () => {
    row.classList.remove("dragging");
    dragged = null;
  });
  row.addEventListener("dragover", (event) => {
    if (dragged === null || dragged === index) return;
    event.preventDefault();
    row.classList.add("drop-before");
  });
  row.addEventListener("dragleave", () => row.classList.remove("drop-before"));
  row.addEventListener("drop", (event) => {
    event.preventDefault();
    row.classList.remove("drop-before");
    if (dragged === null || dragged === index) return;
    // Dropped on a row: the dragged layer goes just above it in the stack (before it in the list).
    const target = editor.stack.findIndex((item) => item.layer.index === index);
    const from = editor.stack.findIndex((item) => item.layer.index === dragged);
    editor.moveTo(dragged, from < target ? target : target + 1);
    renderLayers();
  });
}

function selectLayer(index) {
  editor.select(index);
  for (const row of document.querySelectorAll(".layer")) {
    const chosen = Number(row.dataset.index) === index;
    row.classList.toggle("selected", chosen);
    row.querySelector(".layer-name").setAttribute("aria-pressed", String(chosen));
  }
}

function syncControls() {
  const chosen = editor.find(editor.selected);
  $("transform").disabled = !chosen;
  $("sel-name").textContent = chosen ? chosen.layer.name : "none";
  const item = chosen || { dx: 0, dy: 0, scale: 1, rotation: 0 };
  $("tx").value = String(Math.round(item.dx));
  $("ty").value = String(Math.round(item.dy));
  $("ts").value = String(Math.round(item.scale * 100));
  $("ts-out").textContent = `${Math.round(item.scale * 100)}%`;
  $("tr").value = String(Math.round(item.rotation));
  $("tr-out").textContent = `${Math.round(item.rotation)}°`;
}

$("tx").addEventListener("input", (e) => editor.selected !== null && editor.transform(editor.selected, { dx: Number(e.target.value) }));
$("ty").addEventListener("input", (e) => editor.selected !== null && editor.transform(editor.selected, { dy: Number(e.target.value) }));
$("ts").addEventListener("input", (e) => editor.selected !== null && editor.transform(editor.selected, { scale: Number(e.target.value) / 100 }));
$("tr").addEventListener("input", (e) => editor.selected !== null && editor.transform(editor.selected, { rotation: Number(e.target.value) }));

// Drag on the canvas moves the layer under the pointer (or the selected one).
const canvas = $("canvas");
let drag = null;
canvas.addEventListener("pointerdown", (event) => {
  const [x, y] = editor.point(event);
  const index = editor.hit(x, y) ?? editor.selected;
  if (index === null) return;
  if (index !== editor.selected) selectLayer(index);
  const item = editor.find(index);
  drag = { index, x, y, dx: item.dx, dy: item.dy };
  canvas.setPointerCapture(event.pointerId);
});
canvas.addEventListener("pointermove", (event) => {
  if (!drag) return;
  const [x, y] = editor.point(event);
  editor.transform(drag.index, { dx: drag.dx + x - drag.x, dy: drag.dy + y - drag.y });
});
for (const name of ["pointerup", "pointercancel"]) canvas.addEventListener(name, () => (drag = null));
canvas.addEventListener("keydown", (event) => {
  const steps = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  if (editor.selected === null || !(event.key in steps)) return;
  event.preventDefault();
  const [sx, sy] = steps[event.key];
  const step = event.shiftKey ? 10 : 1;
  editor.moveBy(editor.selected, sx * step, sy * step);
});

$("reset").addEventListener("click", () => {
  editor.reset();
  renderLayers();
});

$("dl-png").addEventListener("click", async () => {
  const blob = await editor.png();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `${(current?.filename || "poster").replace(/\.[^.]+$/, "")}-edited.png`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
});

async function split(layer) {
  try {
    const child = await postJson(`/api/v1/jobs/${current.id}/layers/${layer.index}/decompose`, {});
    track(child);
    show($("fb-status"), `Splitting “${layer.name}”: follow it in the job list.`);
  } catch (error) {
    show($("result-error"), error.message);
  }
}

// ---- feedback -----------------------------------------------------------------------------

async function rate(rating, comment = "") {
  try {
    await postJson(`/api/v1/jobs/${current.id}/feedback`, { rating, comment });
    $("fb-good").setAttribute("aria-pressed", String(rating === "good"));
    $("fb-bad").setAttribute("aria-pressed", String(rating === "bad"));
    show($("fb-status"), rating === "good" ? "Thanks for the feedback!" : "Thanks: we kept this poster to improve on it.");
  } catch (error) {
    show($("result-error"), error.message);
  }
}

$("fb-good").addEventListener("click", () => {
  $("fb-comment-form").hidden = true;
  rate("good");
});
$("fb-bad").addEventListener("click", () => {
  rate("bad");
  $("fb-comment-form").hidden = false;
  $("fb-comment").focus();
});
$("fb-comment-form").addEventListener("submit", (event) => {
  event.preventDefault();
  rate("bad", $("fb-comment").value);
  $("fb-comment-form").hidden = true;
});

// ---- start --------------------------------------------------------------------------------

loadSession()
  .then(restoreRecent)
  .catch((error) => show($("upload-error"), error.message));
