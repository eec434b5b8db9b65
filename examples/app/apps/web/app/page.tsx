import { API_URL, SCHEMA, STACK } from './config';
import { Health } from './health';
import { Projects } from './projects';

export default function Home() {
  return (
    <main>
      <h1>Example app</h1>
      <dl>
        <dt>API</dt>
        <dd id="api-url">{API_URL || '(not set)'}</dd>
        {STACK ? (
          <>
            <dt>Stack</dt>
            <dd id="stack">{STACK}</dd>
          </>
        ) : null}
        {SCHEMA ? (
          <>
            <dt>Schema</dt>
            <dd id="schema">{SCHEMA}</dd>
          </>
        ) : null}
      </dl>
      <Health />
      <h2>Your projects</h2>
      <Projects />
    </main>
  );
}
