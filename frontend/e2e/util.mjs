// Small helpers of the end-to-end tests: sleeping, a timer to lose a race against, polling a
// check until it holds, and printing a measurement (as a "# " line in the test's output).

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Resolves to `value` after `ms`, for the losing side of a `Promise.race`: its timer does not
 * keep Node alive, so a race won by the other side does not hold the run's exit for `ms`.
 */
export const timeout = (ms, value = null) => new Promise((r) => setTimeout(r, ms, value).unref());

export const log = (...a) => console.log('#', ...a);

/** Polls `check` (async, true when done) until it holds or `timeout` passes. */
export async function eventually(what, check, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await check();
    if (last === true) return;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(100);
  }
}
