// How the inspector writes a frame's arrival: ms since its connection's request was sent
// ("+1042 ms", exact, so two frames compare at a glance) and the local wall clock to the
// millisecond ("21:41:05.123", to match server logs).

/** `+N ms`, N rounded to a whole millisecond. */
export function sinceText(ms: number): string {
  return `+${Math.round(ms)} ms`;
}

/** The local time of `wall` (ms since 1970) as HH:MM:SS.mmm. */
export function clockText(wall: number): string {
  const d = new Date(wall);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}
