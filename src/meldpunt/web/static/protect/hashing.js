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

  // Decoded as the person sees it (EXIF orientation applied; ``exifTranspose: false``: as
  // stored), without colour management.
  async function pixelsOf(blob, options = {}) {
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

  global.meldpuntHashing = { md5, pdqOfPixels, pixelsOf, hashFile };
})(globalThis);
