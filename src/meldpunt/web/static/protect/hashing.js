// meldpunt's picture hashing in the browser: PDQ (Meta's algorithm, with the eight orientation
// hashes) and MD5, computed on the person's own device. Nothing here sends anything anywhere.
//
// PDQ, as in Meta's reference and meldpunt's server (signals/pdq.py): luminance
// (0.299 R + 0.587 G + 0.114 B), a "Jarosz" tent filter (two box passes along each axis, window
// ceil(side / 128)), 64 x 64 samples at floor((i + 0.5) * side / 64), the 16 x 16 corner of their
// DCT-II without the DC row and column, each bit set where its coefficient exceeds the median
// (the lower one of 256), the bits written as the reference writes them (64 hex digits).
// The orientations are true ones: the filter is run along each axis forwards and backwards, so
// each of the eight hashes is the one the picture would get if it were rotated or flipped.
"use strict";
(function (global) {
  const SIDE = 64;

  function windowOf(side) {
    return Math.floor((side + 2 * SIDE - 1) / (2 * SIDE));
  }

  // For an axis of n pixels: each output's box [lo, hi] and the 64 sample positions.
  const plans = new Map();
  function planOf(n) {
    let plan = plans.get(n);
    if (plan) return plan;
    const w = windowOf(n);
    const half = Math.floor((w + 2) / 2);
    const lo = new Int32Array(n), hi = new Int32Array(n), inv = new Float64Array(n);
    for (let o = 0; o < n; o++) {
      lo[o] = Math.max(0, o - w + half);
      hi[o] = Math.min(n - 1, o + half - 1);
      inv[o] = 1 / (hi[o] - lo[o] + 1);
    }
    const samples = new Int32Array(SIDE);
    for (let i = 0; i < SIDE; i++) samples[i] = Math.floor(((i + 0.5) * n) / SIDE);
    plan = { n, lo, hi, inv, samples, prefix: new Float64Array(n + 1), pass: new Float64Array(n),
             passPrefix: new Float64Array(n + 1), line: new Float64Array(n) };
    if (plans.size > 16) plans.clear();
    plans.set(n, plan);
    return plan;
  }

  // The 64 tent-filtered samples of plan.line, written to out[offset + i * stride].
  function tent(plan, out, offset, stride) {
    const { n, lo, hi, inv, samples, prefix, pass, passPrefix, line } = plan;
    prefix[0] = 0;
    for (let x = 0; x < n; x++) prefix[x + 1] = prefix[x] + line[x];
    passPrefix[0] = 0;
    for (let m = 0; m < n; m++) {
      pass[m] = (prefix[hi[m] + 1] - prefix[lo[m]]) * inv[m];
      passPrefix[m + 1] = passPrefix[m] + pass[m];
    }
    for (let i = 0; i < SIDE; i++) {
      const s = samples[i];
      out[offset + i * stride] = (passPrefix[hi[s] + 1] - passPrefix[lo[s]]) * inv[s];
    }
  }

  // blocks[fr * 2 + fc]: the 64 x 64 buffer of the picture with its rows flipped (fr) and its
  // columns flipped (fc), row-major.
  function buffers(rgba, width, height) {
    const across = new Float64Array(height * 2 * SIDE); // per row: 64 forward, 64 backward
    const rows = planOf(width);
    const line = rows.line;
    for (let y = 0; y < height; y++) {
      let p = y * width * 4;
      for (let x = 0; x < width; x++, p += 4) {
        line[x] = Math.fround(0.299 * rgba[p] + 0.587 * rgba[p + 1] + 0.114 * rgba[p + 2]);
      }
      tent(rows, across, y * 2 * SIDE, 1);
      line.reverse();
      tent(rows, across, y * 2 * SIDE + SIDE, 1);
    }
    const cols = planOf(height);
    const blocks = [0, 1, 2, 3].map(() => new Float64Array(SIDE * SIDE));
    for (let c = 0; c < 2 * SIDE; c++) {
      const fc = c >= SIDE ? 1 : 0, j = c % SIDE;
      for (let y = 0; y < height; y++) cols.line[y] = across[y * 2 * SIDE + c];
      tent(cols, blocks[fc], j, SIDE);
      cols.line.reverse();
      tent(cols, blocks[2 + fc], j, SIDE);
    }
    return blocks;
  }

  let dct = null;
  function dctMatrix() {
    if (dct) return dct;
    dct = new Float64Array(16 * SIDE);
    const scale = Math.sqrt(2 / SIDE);
    for (let i = 0; i < 16; i++) {
      for (let j = 0; j < SIDE; j++) {
        dct[i * SIDE + j] = scale * Math.cos((Math.PI / 2 / SIDE) * (i + 1) * (2 * j + 1));
      }
    }
    return dct;
  }

  function quality(buf) {
    const f = Math.fround;
    let sum = 0;
    for (let i = 0; i < SIDE; i++) {
      for (let j = 0; j < SIDE; j++) {
        const v = f(buf[i * SIDE + j]);
        if (i + 1 < SIDE) sum += Math.abs(Math.trunc(f(f(f(v - f(buf[(i + 1) * SIDE + j])) * 100) / 255)));
        if (j + 1 < SIDE) sum += Math.abs(Math.trunc(f(f(f(v - f(buf[i * SIDE + j + 1])) * 100) / 255)));
      }
    }
    return Math.min(100, Math.floor(sum / 90));
  }

  function hashOf(buf) {
    const d = dctMatrix();
    const tmp = new Float64Array(16 * SIDE);
    for (let i = 0; i < 16; i++) {
      for (let k = 0; k < SIDE; k++) {
        let s = 0;
        for (let j = 0; j < SIDE; j++) s += d[i * SIDE + j] * buf[j * SIDE + k];
        tmp[i * SIDE + k] = s;
      }
    }
    const coeffs = new Float64Array(256);
    for (let i = 0; i < 16; i++) {
      for (let k = 0; k < 16; k++) {
        let s = 0;
        for (let j = 0; j < SIDE; j++) s += tmp[i * SIDE + j] * d[k * SIDE + j];
        coeffs[i * 16 + k] = s;
      }
    }
    const median = Float64Array.from(coeffs).sort()[127];
    let hex = "";
    for (let i = 15; i >= 0; i--) {
      let word = 0;
      for (let j = 0; j < 16; j++) if (coeffs[i * 16 + j] > median) word |= 1 << j;
      hex += word.toString(16).padStart(4, "0");
    }
    return hex;
  }

  // (transpose, flipRows, flipCols) of each orientation, as meldpunt names them.
  const ORIENTATIONS = [
    ["original", false, false, false],
    ["rotate90", true, true, false],
    ["rotate180", false, true, true],
    ["rotate270", true, false, true],
    ["flipx", false, true, false],
    ["flipy", false, false, true],
    ["flip_plus1", true, false, false],
    ["flip_minus1", true, true, true],
  ];

  function orient(blocks, transpose, flipRows, flipCols) {
    let fr = flipRows, fc = flipCols;
    if (transpose) [fr, fc] = [fc, fr];
    const block = blocks[(fr ? 2 : 0) + (fc ? 1 : 0)];
    if (!transpose) return block;
    const out = new Float64Array(SIDE * SIDE);
    for (let i = 0; i < SIDE; i++) for (let j = 0; j < SIDE; j++) out[i * SIDE + j] = block[j * SIDE + i];
    return out;
  }

  // PDQ of RGBA pixels: {hash, quality, orientations: {name: hash}} (quality of the original).
  function pdqOfPixels(rgba, width, height) {
    const blocks = buffers(rgba, width, height);
    const orientations = {};
    for (const [name, t, r, c] of ORIENTATIONS) orientations[name] = hashOf(orient(blocks, t, r, c));
    return { hash: orientations.original, quality: quality(blocks[0]), orientations };
  }

  // --- MD5 (RFC 1321), for a file's bytes --------------------------------------------------
  const S = [7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20,
             5, 9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
             6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21];
  const K = new Int32Array(64);
  for (let i = 0; i < 64; i++) K[i] = Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) | 0;

  function md5(bytes) {
    const length = bytes.length;
    const padded = new Uint8Array(((length + 8) >> 6) * 64 + 64);
    padded.set(bytes);
    padded[length] = 0x80;
    const view = new DataView(padded.buffer);
    view.setUint32(padded.length - 8, (length * 8) >>> 0, true);
    view.setUint32(padded.length - 4, Math.floor(length / 2 ** 29), true);
    let a0 = 0x67452301, b0 = 0xefcdab89 | 0, c0 = 0x98badcfe | 0, d0 = 0x10325476;
    const m = new Int32Array(16);
    for (let off = 0; off < padded.length; off += 64) {
      for (let i = 0; i < 16; i++) m[i] = view.getInt32(off + i * 4, true);
      let a = a0, b = b0, c = c0, d = d0;
      for (let i = 0; i < 64; i++) {
        let f, g;
        if (i < 16) { f = (b & c) | (~b & d); g = i; }
        else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) & 15; }
        else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) & 15; }
        else { f = c ^ (b | ~d); g = (7 * i) & 15; }
        const sum = (a + f + K[i] + m[g]) | 0;
        a = d; d = c; c = b;
        b = (b + ((sum << S[i]) | (sum >>> (32 - S[i])))) | 0;
      }
      a0 = (a0 + a) | 0; b0 = (b0 + b) | 0; c0 = (c0 + c) | 0; d0 = (d0 + d) | 0;
    }
    let hex = "";
    for (const word of [a0, b0, c0, d0]) {
      for (let i = 0; i < 4; i++) hex += ((word >>> (8 * i)) & 0xff).toString(16).padStart(2, "0");
    }
    return hex;
  }

  // --- a picture file, decoded here --------------------------------------------------------
  const MAX_PIXELS = 50_000_000;

  // A copy of a JPEG's bytes whose EXIF orientation tag says 1 (as stored): browsers apply the
  // tag whatever createImageBitmap is asked, so a decode "as stored" needs the tag changed.
  function withoutOrientation(bytes) {
    if (bytes[0] !== 0xff || bytes[1] !== 0xd8) return bytes;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let at = 2;
    while (at + 4 <= bytes.length && bytes[at] === 0xff) {
      const marker = bytes[at + 1], size = view.getUint16(at + 2);
      if (marker === 0xda) break; // the picture data starts: no EXIF before it
      const start = at + 4;
      if (marker === 0xe1 && view.getUint32(start) === 0x45786966 && start + 14 <= bytes.length) {
        const tiff = start + 6, little = view.getUint16(tiff) === 0x4949;
        const ifd = tiff + view.getUint32(tiff + 4, little);
        if (ifd + 2 > bytes.length) return bytes;
        const count = view.getUint16(ifd, little);
        for (let i = 0; i < count; i++) {
          const entry = ifd + 2 + i * 12;
          if (entry + 12 > bytes.length) return bytes;
          if (view.getUint16(entry, little) === 0x0112) {
            const copy = bytes.slice();
            new DataView(copy.buffer).setUint16(entry + 8, 1, little);
            return copy;
          }
        }
        return bytes;
      }
      at = start + size - 2;
    }
    return bytes;
  }

  // --- transparent PNGs, decoded here -----------------------------------------------------
  // A browser's canvas keeps colours multiplied by their alpha, so where a picture is (nearly)
  // transparent its colours are lost: fully transparent pixels read back black, whatever the
  // file stores. The server, like the reference tools, drops alpha and hashes the stored
  // colours. A PNG with transparency is therefore decoded here (inflate through the browser's
  // DecompressionStream), to the colours Pillow gives: 16-bit samples by their high byte, grey
  // of 1, 2 or 4 bits scaled to 0..255, palette entries as stored. Interlaced ones (rare) and
  // every other picture are left to the browser, whose pixels equal Pillow's there.

  function pngChunks(bytes) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
    if (bytes.length < 33 || signature.some((b, i) => bytes[i] !== b)) return null;
    const chunks = [];
    for (let at = 8; at + 12 <= bytes.length;) {
      const size = view.getUint32(at);
      const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
      if (at + 12 + size > bytes.length) break;
      chunks.push({ type, data: bytes.subarray(at + 8, at + 8 + size) });
      if (type === "IEND") break;
      at += 12 + size;
    }
    return chunks;
  }

  function orientationIn(tiff) {
    // The EXIF orientation tag of a TIFF structure (PNG's eXIf chunk), or 1.
    if (tiff.length < 8) return 1;
    const view = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
    const little = view.getUint16(0) === 0x4949;
    const ifd = view.getUint32(4, little);
    if (ifd + 2 > tiff.length) return 1;
    const count = view.getUint16(ifd, little);
    for (let i = 0; i < count && ifd + 14 + i * 12 <= tiff.length; i++) {
      const entry = ifd + 2 + i * 12;
      if (view.getUint16(entry, little) === 0x0112) return view.getUint16(entry + 8, little);
    }
    return 1;
  }

  async function inflate(parts) {
    const stream = new Blob(parts).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  function unfilter(raw, rows, rowBytes, bpp) {
    const out = new Uint8Array(rows * rowBytes);
    for (let y = 0; y < rows; y++) {
      const filter = raw[y * (rowBytes + 1)], line = raw.subarray(y * (rowBytes + 1) + 1, (y + 1) * (rowBytes + 1));
      const at = y * rowBytes;
      for (let x = 0; x < rowBytes; x++) {
        const a = x >= bpp ? out[at + x - bpp] : 0, b = y ? out[at - rowBytes + x] : 0;
        const c = x >= bpp && y ? out[at - rowBytes + x - bpp] : 0;
        let v = line[x];
        if (filter === 1) v += a;
        else if (filter === 2) v += b;
        else if (filter === 3) v += (a + b) >> 1;
        else if (filter === 4) {
          const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
          v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
        } else if (filter !== 0) throw new Error(`a PNG row has filter ${filter}`);
        out[at + x] = v & 0xff;
      }
    }
    return out;
  }

  // Output pixel (x, y) of an oriented picture comes from stored pixel source(x, y).
  const EXIF_SOURCE = {
    2: (x, y, w) => [w - 1 - x, y],
    3: (x, y, w, h) => [w - 1 - x, h - 1 - y],
    4: (x, y, w, h) => [x, h - 1 - y],
    5: (x, y) => [y, x],
    6: (x, y, w, h) => [y, h - 1 - x],
    7: (x, y, w, h) => [w - 1 - y, h - 1 - x],
    8: (x, y, w) => [w - 1 - y, x],
  };

  function oriented(rgba, width, height, orientation) {
    const source = EXIF_SOURCE[orientation];
    if (!source) return { data: rgba, width, height };
    const turned = orientation >= 5;
    const w = turned ? height : width, h = turned ? width : height;
    const out = new Uint8ClampedArray(w * h * 4);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const [sx, sy] = source(x, y, width, height);
        const from = (sy * width + sx) * 4, to = (y * w + x) * 4;
        out[to] = rgba[from]; out[to + 1] = rgba[from + 1]; out[to + 2] = rgba[from + 2]; out[to + 3] = 255;
      }
    }
    return { data: out, width: w, height: h };
  }

  // A transparent PNG's stored colours, oriented as ``options`` says; null when the browser's
  // own decoding gives the same colours (no transparency) or the PNG is interlaced.
  async function transparentPng(bytes, options) {
    const chunks = pngChunks(bytes);
    if (!chunks || !chunks.length || chunks[0].type !== "IHDR") return null;
    const head = new DataView(chunks[0].data.buffer, chunks[0].data.byteOffset, 13);
    const width = head.getUint32(0), height = head.getUint32(4);
    const depth = head.getUint8(8), kind = head.getUint8(9), interlaced = head.getUint8(12);
    const transparent = kind === 4 || kind === 6 || chunks.some((c) => c.type === "tRNS");
    if (!transparent || interlaced) return null;
    if (width * height > MAX_PIXELS) throw new Error(`the picture has more than ${MAX_PIXELS} pixels`);
    const channels = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[kind];
    if (!channels || ![1, 2, 4, 8, 16].includes(depth)) throw new Error("not a PNG this page knows");
    const rowBytes = Math.ceil((width * channels * depth) / 8), bpp = Math.max(1, (channels * depth) >> 3);
    const raw = await inflate(chunks.filter((c) => c.type === "IDAT").map((c) => c.data));
    if (raw.length < height * (rowBytes + 1)) throw new Error("the PNG's picture data is cut short");
    const rows = unfilter(raw, height, rowBytes, bpp);
    const plte = chunks.find((c) => c.type === "PLTE");
    const palette = plte ? plte.data : new Uint8Array(0);
    const rgba = new Uint8ClampedArray(width * height * 4);
    const step = depth === 16 ? 2 : 1, scale = depth < 8 && kind === 0 ? 255 / ((1 << depth) - 1) : 1;
    for (let y = 0; y < height; y++) {
      const line = rows.subarray(y * rowBytes, (y + 1) * rowBytes);
      for (let x = 0; x < width; x++) {
        let r, g, b;
        if (depth < 8) {
          const bit = x * depth, value = (line[bit >> 3] >> (8 - depth - (bit & 7))) & ((1 << depth) - 1);
          if (kind === 3) [r, g, b] = [palette[value * 3] ?? 0, palette[value * 3 + 1] ?? 0, palette[value * 3 + 2] ?? 0];
          else r = g = b = Math.round(value * scale);
        } else {
          const at = x * channels * step; // the high byte of each 16-bit sample
          if (kind === 3) { const i = line[at] * 3; [r, g, b] = [palette[i] ?? 0, palette[i + 1] ?? 0, palette[i + 2] ?? 0]; }
          else if (kind === 0 || kind === 4) r = g = b = line[at];
          else [r, g, b] = [line[at], line[at + step], line[at + 2 * step]];
        }
        const to = (y * width + x) * 4;
        rgba[to] = r; rgba[to + 1] = g; rgba[to + 2] = b; rgba[to + 3] = 255;
      }
    }
    const exif = chunks.find((c) => c.type === "eXIf");
    const orientation = options.exifTranspose === false || !exif ? 1 : orientationIn(exif.data);
    return oriented(rgba, width, height, orientation);
  }

  // Decoded as the person sees it (EXIF orientation applied; ``exifTranspose: false``: as
  // stored), without colour management.
  async function pixelsOf(blob, options = {}) {
    const own = await transparentPng(new Uint8Array(await blob.arrayBuffer()), options);
    if (own) return own;
    if (options.exifTranspose === false) {
      blob = new Blob([withoutOrientation(new Uint8Array(await blob.arrayBuffer()))]);
    }
    const bitmap = await createImageBitmap(blob, {
      imageOrientation: "from-image",
      colorSpaceConversion: "none",
      premultiplyAlpha: "none",
    });
    try {
      const { width, height } = bitmap;
      if (width * height > MAX_PIXELS) throw new Error(`the picture has more than ${MAX_PIXELS} pixels`);
      const canvas = new OffscreenCanvas(width, height);
      const context = canvas.getContext("2d", { willReadFrequently: true });
      context.drawImage(bitmap, 0, 0);
      return { data: context.getImageData(0, 0, width, height).data, width, height };
    } finally {
      bitmap.close();
    }
  }

  async function hashFile(blob, options = {}) {
    const bytes = new Uint8Array(await blob.arrayBuffer());
    const digest = md5(bytes);
    const { data, width, height } = await pixelsOf(blob, options);
    const pdq = pdqOfPixels(data, width, height);
    return { md5: digest, pdq: pdq.hash, quality: pdq.quality, orientations: pdq.orientations,
             width, height };
  }

  global.meldpuntHashing = { md5, pdqOfPixels, pixelsOf, hashFile, transparentPng };
})(globalThis);
