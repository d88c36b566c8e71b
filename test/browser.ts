// Headless Chromium for the report tests: screenshots decoded to pixels, the DOM as the browser built it,
// and layout measured in the browser (no browser-automation dependency: the chromium binary, its flags).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';

export const CHROMIUM = '/usr/bin/chromium';

export interface Png {
  width: number;
  height: number;
  channels: number;
  pixels: Uint8Array;
}

/** Minimal PNG decoder: 8-bit RGB/RGBA, not interlaced (what Chromium writes). */
export function decodePng(buf: Buffer): Png {
  assert.deepEqual([...buf.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], 'PNG signature');
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  for (let off = 8; off < buf.length; ) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const [depth, colorType, , , interlace] = [data[8]!, data[9]!, data[10]!, data[11]!, data[12]!];
      assert.equal(depth, 8, 'PNG bit depth 8');
      assert.equal(interlace, 0, 'PNG not interlaced');
      channels = colorType === 2 ? 3 : colorType === 6 ? 4 : 0;
      assert.ok(channels, `PNG colour type ${colorType} (only RGB and RGBA are handled)`);
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  assert.equal(raw.length, height * (stride + 1), 'PNG data length');
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    const prev = row - stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? px[row + i - channels]! : 0;
      const b = y > 0 ? px[prev + i]! : 0;
      const c = y > 0 && i >= channels ? px[prev + i - channels]! : 0;
      let pred: number;
      if (filter === 0) pred = 0;
      else if (filter === 1) pred = a;
      else if (filter === 2) pred = b;
      else if (filter === 3) pred = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else throw new Error(`PNG row ${y}: unknown filter ${filter}`);
      px[row + i] = (raw[src + i]! + pred) & 0xff;
    }
  }
  return { width, height, channels, pixels: px };
}

export function countColor(png: Png, hex: string, tolerance = 6): number {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)) as [number, number, number];
  let n = 0;
  for (let i = 0; i < png.pixels.length; i += png.channels) {
    if (Math.abs(png.pixels[i]! - r) <= tolerance && Math.abs(png.pixels[i + 1]! - g) <= tolerance && Math.abs(png.pixels[i + 2]! - b) <= tolerance) n++;
  }
  return n;
}

export function chromium(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // Own process group, so a hung browser and its helpers can be killed together.
    const child = spawn(CHROMIUM, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      reject(new Error(`chromium timed out after ${timeoutMs / 1000} s\n${stderr.slice(-2000)}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export function browserArgs(dir: string, profileName: string): string[] {
  return [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--user-data-dir=${join(dir, profileName)}`,
    '--hide-scrollbars',
    '--window-size=1280,2400',
    // finish raster before capturing: without it a tile of the page can come out blank
    '--run-all-compositor-stages-before-draw',
  ];
}

export interface Layout {
  /** document.documentElement.scrollWidth: over the window's width means the page scrolls sideways. */
  scrollWidth: number;
  innerWidth: number;
  /** Elements that scroll sideways themselves (overflow-x auto/scroll and wider content), as tag.class. */
  scrollers: string[];
  /** Right edge of the widest table in `within`, in px. */
  tableRight: number;
}

/**
 * Lays the page out in Chromium at the window size of `browserArgs` and measures it. The report's CSP
 * forbids scripts, so the measurement runs in a copy without it, which the report itself never is.
 */
export async function measureLayout(html: string, dir: string, within: string): Promise<Layout> {
  const probe =
    '<script>(() => {' +
    'const scrollers = [...document.querySelectorAll("body *")].filter((el) => ["auto", "scroll"].includes(getComputedStyle(el).overflowX) && el.scrollWidth > el.clientWidth + 1).map((el) => `${el.tagName.toLowerCase()}.${el.className}`);' +
    `const tables = [...document.querySelectorAll(${JSON.stringify(`${within} table`)})].map((t) => t.getBoundingClientRect().right);` +
    'const out = document.createElement("pre"); out.id = "layout-probe";' +
    'out.textContent = JSON.stringify({ scrollWidth: document.documentElement.scrollWidth, innerWidth, scrollers, tableRight: Math.max(0, ...tables) });' +
    'document.body.append(out);})();</script>';
  const page = join(dir, 'layout.html');
  const withoutCsp = html.replace(/<meta http-equiv="Content-Security-Policy"[^>]*>/, '');
  assert.notEqual(withoutCsp, html, 'the report has a CSP meta to take out');
  writeFileSync(page, withoutCsp.replace('</body>', `${probe}</body>`));
  const dom = await chromium([...browserArgs(dir, 'profile-layout'), '--dump-dom', `file://${page}`]);
  assert.equal(dom.code, 0, `chromium --dump-dom failed\n${dom.stderr.slice(-2000)}`);
  const m = /<pre id="layout-probe">([^<]*)<\/pre>/.exec(dom.stdout);
  assert.ok(m, 'the layout probe ran');
  return JSON.parse(m[1]!.replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&')) as Layout;
}
