// Reads a PSD with ag-psd (an independent reader) and reports what a designer's tool would see.
//
// Usage: node read_psd.mjs FILE.psd OUTDIR
// Prints JSON: {width, height, layers: [{name, left, top, right, bottom, hidden}], xmp}.
// Writes OUTDIR/stored.rgba (the composite image stored in the file) and OUTDIR/recomposited.rgba
// (the layers composited bottom to top here, straight alpha "over", in float32), both W*H*4 bytes.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import agPsd from "ag-psd";

const [file, outDir] = process.argv.slice(2);
if (!file || !outDir) {
  console.error("usage: node read_psd.mjs FILE.psd OUTDIR");
  process.exit(2);
}

// Plain pixel buffers instead of a canvas: with useImageData, ag-psd needs nothing else.
agPsd.initializeCanvas(
  () => {
    throw new Error("no canvas in this reader");
  },
  (width, height) => ({ width, height, data: new Uint8ClampedArray(width * height * 4) }),
);
const psd = agPsd.readPsd(readFileSync(file), { useImageData: true, skipThumbnail: true });
const { width, height } = psd;
const layers = psd.children ?? [];

const canvas = new Float32Array(width * height * 3); // float32: 40 MP stays under 0.5 GB
for (const layer of layers) {
  const image = layer.imageData;
  if (layer.hidden || !image) continue;
  const layerWidth = layer.right - layer.left;
  for (let y = Math.max(layer.top, 0); y < Math.min(layer.bottom, height); y++) {
    for (let x = Math.max(layer.left, 0); x < Math.min(layer.right, width); x++) {
      const source = ((y - layer.top) * layerWidth + (x - layer.left)) * 4;
      const alpha = (image.data[source + 3] / 255) * (layer.opacity ?? 1);
      const target = (y * width + x) * 3;
      for (let channel = 0; channel < 3; channel++) {
        canvas[target + channel] = image.data[source + channel] * alpha + canvas[target + channel] * (1 - alpha);
      }
    }
  }
}
const recomposited = new Uint8Array(width * height * 4);
for (let pixel = 0; pixel < width * height; pixel++) {
  for (let channel = 0; channel < 3; channel++) {
    recomposited[pixel * 4 + channel] = Math.min(255, Math.max(0, Math.round(canvas[pixel * 3 + channel])));
  }
  recomposited[pixel * 4 + 3] = 255;
}
writeFileSync(join(outDir, "recomposited.rgba"), recomposited);
writeFileSync(join(outDir, "stored.rgba"), psd.imageData ? psd.imageData.data : new Uint8Array(0));

console.log(
  JSON.stringify({
    width,
    height,
    layers: layers.map((layer) => ({
      name: layer.name,
      left: layer.left,
      top: layer.top,
      right: layer.right,
      bottom: layer.bottom,
      hidden: Boolean(layer.hidden),
    })),
    xmp: psd.imageResources?.xmpMetadata ?? "",
  }),
);
