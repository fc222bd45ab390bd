// The stamp gallery: the PNG previews inside a job's stamps archive (a zip), shown in the page.
//
// The archive is read here, in the browser, so that the page needs no route per stamp: the
// zip's central directory is parsed by hand (a page without a framework has no zip library;
// the format's few fixed-size headers take less code than loading one) and each PNG entry is
// inflated with the browser's own DecompressionStream("deflate-raw").

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

/** Entries of a zip archive: [{name, method, compressedSize, offset}]. */
export function zipEntries(buffer) {
  const view = new DataView(buffer);
  let end = -1;
  for (let k = buffer.byteLength - 22; k >= Math.max(0, buffer.byteLength - 65557); k -= 1) {
    if (view.getUint32(k, true) === EOCD) { end = k; break; }
  }
  if (end < 0) throw new Error("the stamps archive is not a zip file");
  const count = view.getUint16(end + 10, true);
  let at = view.getUint32(end + 16, true);
  const names = new TextDecoder();
  const entries = [];
  for (let k = 0; k < count; k += 1) {
    if (view.getUint32(at, true) !== CENTRAL) throw new Error("the stamps archive is damaged");
    const nameLength = view.getUint16(at + 28, true);
    entries.push({
      method: view.getUint16(at + 10, true),
      compressedSize: view.getUint32(at + 20, true),
      offset: view.getUint32(at + 42, true),
      name: names.decode(new Uint8Array(buffer, at + 46, nameLength)),
    });
    at += 46 + nameLength + view.getUint16(at + 30, true) + view.getUint16(at + 32, true);
  }
  return entries;
}

/** The bytes of one entry, inflated. */
export async function zipRead(buffer, entry) {
  const view = new DataView(buffer);
  if (view.getUint32(entry.offset, true) !== LOCAL) throw new Error(`${entry.name}: damaged entry`);
  const start = entry.offset + 30 + view.getUint16(entry.offset + 26, true) + view.getUint16(entry.offset + 28, true);
  const data = new Uint8Array(buffer, start, entry.compressedSize);
  if (entry.method === 0) return new Blob([data]);
  if (entry.method !== 8) throw new Error(`${entry.name}: compression method ${entry.method} is not supported`);
  const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Response(stream).blob();
}

/** Target, visit and detector of a stamp, from its name: ``stamps/target{T}/{visit}_{detector}.png``. */
export function stampKey(name) {
  const m = name.match(/target(\d+)\/(\d+)_(\d+)\.[a-z]+$/i);
  if (!m) return { target: undefined, visit: undefined, detector: undefined };
  return { target: Number(m[1]), visit: Number(m[2]), detector: Number(m[3]) };
}

/**
 * Fill `list` with the PNG previews of `buffer` (a zip), optionally only those of `target`.
 * Returns the object URLs made (to revoke later).
 */
export async function showStamps(buffer, list, { target, limit = 240 } = {}) {
  const urls = [];
  list.replaceChildren();
  let entries = zipEntries(buffer).filter((e) => e.name.toLowerCase().endsWith(".png"));
  if (target !== undefined) {
    const mine = entries.filter((e) => stampKey(e.name).target === target);
    if (mine.length || entries.some((e) => stampKey(e.name).target !== undefined)) entries = mine;
  }
  entries.sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
  for (const entry of entries.slice(0, limit)) {
    const blob = await zipRead(buffer, entry);
    const url = URL.createObjectURL(new Blob([blob], { type: "image/png" }));
    urls.push(url);
    const key = stampKey(entry.name);
    const item = document.createElement("li");
    if (key.visit !== undefined) item.dataset.visit = String(key.visit);
    if (key.detector !== undefined) item.dataset.detector = String(key.detector);
    if (key.target !== undefined) item.dataset.target = String(key.target);
    const img = document.createElement("img");
    img.src = url;
    img.alt = `stamp ${entry.name.split("/").pop()}`;
    img.loading = "lazy";
    img.width = 128;
    img.height = 128;
    const caption = document.createElement("span");
    caption.textContent = key.visit !== undefined ? `visit ${key.visit}` : entry.name.split("/").pop();
    item.append(img, caption);
    list.append(item);
  }
  return { urls, shown: Math.min(entries.length, limit), total: entries.length };
}
