// Fakes of the browser APIs the stream modules use (EventSource, the Web Locks API,
// BroadcastChannel), for the Vitest unit tests, which run in Node without a browser.
// They behave like the real ones where the modules depend on it: locks are granted one
// at a time in request order and pass to the next waiter on release; channel messages
// reach every other channel of the same name, never the sender, asynchronously and in
// order.

import type { EventSourceLike } from './stream.ts';
import type { ChannelLike, LockManagerLike } from './sharedStream.ts';

/** Enough of EventSource to drive the modules: counts listeners so leaks show. */
export class FakeEventSource implements EventSourceLike {
  static all: FakeEventSource[] = [];
  readyState = 0;
  closed = false;
  onopen: ((this: never, ev: Event) => unknown) | null = null;
  onerror: ((this: never, ev: Event) => unknown) | null = null;
  listeners = new Map<string, Set<(ev: MessageEvent) => void>>();

  constructor(readonly url: string) {
    FakeEventSource.all.push(this);
  }
  static open(): FakeEventSource[] {
    return FakeEventSource.all.filter((s) => !s.closed);
  }
  addEventListener(type: string, l: (ev: MessageEvent) => void) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type)!.add(l);
  }
  removeEventListener(type: string, l: (ev: MessageEvent) => void) {
    this.listeners.get(type)?.delete(l);
  }
  close() {
    this.closed = true;
    this.readyState = 2;
  }
  listenerCount() {
    let n = 0;
    for (const s of this.listeners.values()) n += s.size;
    return n + (this.onopen ? 1 : 0) + (this.onerror ? 1 : 0);
  }
  /** The response arrived: the connection is open. */
  open() {
    this.readyState = 1;
    (this.onopen as ((ev: Event) => void) | null)?.({} as Event);
  }
  emit(type: string, data: unknown, lastEventId = '') {
    this.readyState = 1;
    const ev = { type, data: typeof data === 'string' ? data : JSON.stringify(data), lastEventId } as MessageEvent;
    for (const l of this.listeners.get(type) ?? []) l(ev);
  }
  fail(readyState: 0 | 2) {
    this.readyState = readyState;
    (this.onerror as ((ev: Event) => void) | null)?.({} as Event);
  }
}

/** The Web Locks API of one browser: exclusive locks, granted in request order. */
export class FakeLocks implements LockManagerLike {
  private held = new Set<string>();
  private queues = new Map<string, (() => void)[]>();

  request(name: string, options: { signal?: AbortSignal }, callback: (lock: unknown) => Promise<unknown>) {
    return new Promise<unknown>((resolve, reject) => {
      const run = () => {
        Promise.resolve()
          .then(() => callback({ name }))
          .then(resolve, reject)
          .finally(() => this.release(name));
      };
      if (!this.held.has(name)) {
        this.held.add(name); // granted now; the callback runs in a later microtask
        queueMicrotask(run);
        return;
      }
      const queue = this.queues.get(name) ?? [];
      this.queues.set(name, queue);
      queue.push(run);
      options.signal?.addEventListener('abort', () => {
        const i = queue.indexOf(run);
        if (i >= 0) {
          queue.splice(i, 1);
          reject(new DOMException('aborted', 'AbortError'));
        }
      });
    });
  }

  private release(name: string) {
    const next = this.queues.get(name)?.shift();
    if (next) {
      next(); // passes straight to the next waiter
    } else {
      this.held.delete(name);
    }
  }
}

/** BroadcastChannels of one browser: a message reaches every other open channel of its name. */
export class FakeChannels {
  private open = new Set<{ name: string; channel: ChannelLike }>();

  create = (name: string): ChannelLike => {
    const entry = { name, channel: null as unknown as ChannelLike };
    const channels = this.open;
    entry.channel = {
      onmessage: null,
      postMessage(message: unknown) {
        const copy = structuredClone(message);
        for (const other of channels) {
          if (other === entry || other.name !== name) continue;
          queueMicrotask(() => {
            if (channels.has(other)) other.channel.onmessage?.({ data: copy } as MessageEvent);
          });
        }
      },
      close() {
        channels.delete(entry);
      },
    };
    channels.add(entry);
    return entry.channel;
  };
}

/** Lets queued microtasks (lock grants, channel messages) run. */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}
