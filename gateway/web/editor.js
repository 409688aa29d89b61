// The result canvas: layers composited bottom to top with per-layer visibility, solo and
// simple transforms (move, scale, rotate about the layer's box centre). Pure drawing state;
// the page wires it to controls.

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.decoding = "async";
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`could not load ${url}`));
    image.src = url;
  });
}

export class Editor {
  constructor(canvas, onChange = () => {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.onChange = onChange;
    this.stack = []; // bottom to top
    this.selected = null;
    this.soloed = null;
  }

  /** Loads a succeeded job's layers (full-canvas PNGs) and draws them. */
  async load(job) {
    this.canvas.width = job.width;
    this.canvas.height = job.height;
    const images = await Promise.all(job.layers.map((layer) => loadImage(layer.links.png)));
    this.stack = job.layers.map((layer, i) => ({ layer, image: images[i], visible: true, ...Editor.identity() }));
    this.selected = null;
    this.soloed = null;
    this.draw();
  }

  static identity() {
    return { dx: 0, dy: 0, scale: 1, rotation: 0 };
  }

  find(index) {
    return this.stack.find((item) => item.layer.index === index) || null;
  }

  centre(item) {
    const [x, y, w, h] = item.layer.bbox || [0, 0, this.canvas.width, this.canvas.height];
    return [x + w / 2, y + h / 2];
  }

  shown(item) {
    return this.soloed === null ? item.visible : item.layer.index === this.soloed;
  }

  draw() {
    const { ctx, canvas } = this;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    for (const item of this.stack) {
      if (!this.shown(item)) continue;
      ctx.save();
      this.apply(item);
      ctx.drawImage(item.image, 0, 0);
      ctx.restore();
    }
    const chosen = this.find(this.selected);
    if (chosen && this.shown(chosen) && chosen.layer.bbox) {
      const [x, y, w, h] = chosen.layer.bbox;
      ctx.save();
      this.apply(chosen);
      ctx.lineWidth = Math.max(2, canvas.width / 400) / chosen.scale;
      ctx.setLineDash([8 / chosen.scale, 6 / chosen.scale]);
      ctx.strokeStyle = "#2f6fde";
      ctx.strokeRect(x, y, w, h);
      ctx.restore();
    }
  }

  apply(item) {
    const [cx, cy] = this.centre(item);
    this.ctx.translate(cx + item.dx, cy + item.dy);
    this.ctx.rotate((item.rotation * Math.PI) / 180);
    this.ctx.scale(item.scale, item.scale);
    this.ctx.translate(-cx, -cy);
  }

  changed() {
    this.draw();
    this.onChange();
  }

  select(index) {
    this.selected = index;
    this.changed();
  }

  setVisible(index, visible) {
    this.find(index).visible = visible;
    this.changed();
  }

  toggleSolo(index) {
    this.soloed = this.soloed === index ? null : index;
    this.changed();
  }

  /** Changes the selected layer's transform (any of dx, dy, scale, rotation). */
  transform(index, change) {
    Object.assign(this.find(index), change);
    this.changed();
  }

  moveBy(index, ddx, ddy) {
    const item = this.find(index);
    this.transform(index, { dx: item.dx + ddx, dy: item.dy + ddy });
  }

  /** Moves the layer `index` to position `to` of the stack (0 = bottom). */
  moveTo(index, to) {
    const from = this.stack.findIndex((item) => item.layer.index === index);
    const [item] = this.stack.splice(from, 1);
    this.stack.splice(Math.max(0, Math.min(this.stack.length, to)), 0, item);
    this.changed();
  }

  /** One step up (+1, towards the top) or down (-1). */
  step(index, delta) {
    const from = this.stack.findIndex((item) => item.layer.index === index);
    this.moveTo(index, from + delta);
  }

  reset() {
    this.stack.sort((a, b) => a.layer.index - b.layer.index);
    for (const item of this.stack) Object.assign(item, { visible: true, ...Editor.identity() });
    this.soloed = null;
    this.selected = null;
    this.changed();
  }

  /** The topmost shown, non-background layer whose (transformed) box holds the canvas point. */
  hit(x, y) {
    for (let i = this.stack.length - 1; i >= 0; i--) {
      const item = this.stack[i];
      if (!this.shown(item) || !item.layer.bbox || item.layer.kind === "background") continue;
      const [cx, cy] = this.centre(item);
      const angle = (-item.rotation * Math.PI) / 180;
      const px = x - cx - item.dx;
      const py = y - cy - item.dy;
      const lx = (px * Math.cos(angle) - py * Math.sin(angle)) / item.scale + cx;
      const ly = (px * Math.sin(angle) + py * Math.cos(angle)) / item.scale + cy;
      const [bx, by, bw, bh] = item.layer.bbox;
      if (lx >= bx && lx <= bx + bw && ly >= by && ly <= by + bh) return item.layer.index;
    }
    return null;
  }

  /** Canvas coordinates of a pointer event. */
  point(event) {
    const rect = this.canvas.getBoundingClientRect();
    // object-fit: contain may letterbox the canvas inside its box.
    const ratio = Math.min(rect.width / this.canvas.width, rect.height / this.canvas.height);
    const offsetX = (rect.width - this.canvas.width * ratio) / 2;
    const offsetY = (rect.height - this.canvas.height * ratio) / 2;
    return [(event.clientX - rect.left - offsetX) / ratio, (event.clientY - rect.top - offsetY) / ratio];
  }

  /** The composite as shown, without the selection outline, as a PNG blob. */
  async png() {
    const keep = this.selected;
    this.selected = null;
    this.draw();
    const blob = await new Promise((resolve) => this.canvas.toBlob(resolve, "image/png"));
    this.selected = keep;
    this.draw();
    return blob;
  }
}
