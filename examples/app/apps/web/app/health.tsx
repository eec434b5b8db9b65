'use client';

import { useEffect, useState } from 'react';
// Types only: the browser bundle pulls no drizzle/pg/zod runtime.
import type { HealthResponse } from '@app/shared-schemas/types';
import { API_URL, apiUrl } from './config';

type State =
  | { kind: 'loading' }
  | { kind: 'ok'; body: HealthResponse }
  | { kind: 'error'; message: string };

export function Health() {
  const [state, setState] = useState<State>({ kind: 'loading' });

  useEffect(() => {
    if (!API_URL) {
      setState({ kind: 'error', message: 'NEXT_PUBLIC_API_URL was not set at build time' });
      return;
    }
    const controller = new AbortController();
    fetch(apiUrl('health'), { signal: controller.signal, cache: 'no-store' })
      .then(async (res) => {
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        setState({ kind: 'ok', body: (await res.json()) as HealthResponse });
      })
      .catch((err: unknown) => {
        if (!controller.signal.aborted) setState({ kind: 'error', message: String(err) });
      });
    return () => controller.abort();
  }, []);

  if (state.kind === 'loading') return <p id="health">Checking the API…</p>;
  if (state.kind === 'error')
    return (
      <p id="health" className="err">
        API unreachable: {state.message}
      </p>
    );
  return (
    <div id="health" className="ok">
      <p>API status: {state.body.status}</p>
      <pre>{JSON.stringify(state.body, null, 2)}</pre>
    </div>
  );
}
