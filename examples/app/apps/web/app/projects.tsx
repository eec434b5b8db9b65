'use client';

import { useEffect, useState } from 'react';
// Types only: the browser bundle pulls no drizzle/pg/zod runtime.
import type { ErrorResponse, ProjectsResponse } from '@app/shared-schemas/types';
import { API_URL, apiUrl } from './config';

type State =
  | { kind: 'signed-out' }
  | { kind: 'loading' }
  | { kind: 'ok'; body: ProjectsResponse }
  | { kind: 'error'; message: string };

// The bearer token comes from the page's fragment (`#token=...`): a fragment never reaches a
// server or a log, and the demo needs no login page.
function tokenFromFragment(): string | null {
  const params = new URLSearchParams(window.location.hash.replace(/^#/, ''));
  return params.get('token');
}

export function Projects() {
  const [state, setState] = useState<State>({ kind: 'loading' });

  useEffect(() => {
    const token = tokenFromFragment();
    if (!token) {
      setState({ kind: 'signed-out' });
      return;
    }
    if (!API_URL) {
      setState({ kind: 'error', message: 'NEXT_PUBLIC_API_URL was not set at build time' });
      return;
    }
    const controller = new AbortController();
    fetch(apiUrl('projects'), {
      signal: controller.signal,
      cache: 'no-store',
      headers: { authorization: `Bearer ${token}` },
    })
      .then(async (res) => {
        if (!res.ok) {
          const body = (await res.json().catch(() => ({ error: `HTTP ${res.status}` }))) as ErrorResponse;
          throw new Error(`${res.status} ${body.error}${body.message ? `: ${body.message}` : ''}`);
        }
        setState({ kind: 'ok', body: (await res.json()) as ProjectsResponse });
      })
      .catch((err: unknown) => {
        if (!controller.signal.aborted) setState({ kind: 'error', message: String(err) });
      });
    return () => controller.abort();
  }, []);

  if (state.kind === 'signed-out') return <p id="projects">Open this page with #token=… to list your projects.</p>;
  if (state.kind === 'loading') return <p id="projects">Loading your projects…</p>;
  if (state.kind === 'error')
    return (
      <p id="projects" className="err">
        Could not load your projects: {state.message}
      </p>
    );
  return (
    <table id="projects">
      <thead>
        <tr>
          <th>Project</th>
          <th>Status</th>
          <th>Description</th>
        </tr>
      </thead>
      <tbody>
        {state.body.projects.map((p) => (
          <tr key={p.id} className="project">
            <td>{p.name}</td>
            <td>{p.status}</td>
            <td>{p.description ?? ''}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
