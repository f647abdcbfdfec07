// The inspector's HTTP requests (posts, reports, the session) and their answers, newest
// first, the newest MAX_ANSWERS kept. `send` resolves to the answer as well, for a
// panel that reads it (the new report's id, the session).

import { useCallback, useRef, useState } from 'react';
import { exchange, type HttpAnswer } from './exchange.ts';
import type { HttpRequest } from './routes.ts';

export const MAX_ANSWERS = 50;

export interface ShownAnswer extends HttpAnswer {
  key: number;
}

export type Send = (request: HttpRequest) => Promise<HttpAnswer>;

export function useAnswers() {
  const [answers, setAnswers] = useState<ShownAnswer[]>([]);
  const keys = useRef(0);
  const send = useCallback<Send>(async (request) => {
    const answer = await exchange(request);
    keys.current += 1;
    const shown = { ...answer, key: keys.current };
    setAnswers((list) => [shown, ...list].slice(0, MAX_ANSWERS));
    return answer;
  }, []);
  return { answers, send };
}
