const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The canonical (trimmed, lower-case) form of a UUID, or null when `text` is not one. */
export function normalizeUuid(text: string): string | null {
  const t = text.trim().replace(/^\{(.*)\}$/, '$1');
  return UUID_RE.test(t) ? t.toLowerCase() : null;
}

/** A random (version 4) UUID; works outside secure contexts too, where randomUUID is missing. */
export function newUuid(): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === 'function') return c.randomUUID();
  const b = new Uint8Array(16);
  c.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
