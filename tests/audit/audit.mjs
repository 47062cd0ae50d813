// Run the graphql-http server audit (GraphQL over HTTP spec conformance) against a URL.
//
//   node tests/audit/audit.mjs http://127.0.0.1:8000/graphql
//
// An optional bearer token in AUDIT_TOKEN is sent as the Authorization header of every
// request. Prints one JSON array of {id, name, status, reason} to stdout and always exits
// 0 (on a fatal error too, with the error on stderr and no JSON): the caller judges.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
const token = process.env.AUDIT_TOKEN;

function fetchFn(input, init = {}) {
  if (!token) return fetch(input, init);
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

try {
  if (!url) throw new Error('usage: node tests/audit/audit.mjs <graphql-url>');
  const results = await auditServer({ url, fetchFn });
  const summary = results.map(({ id, name, status, reason }) => ({
    id,
    name,
    status,
    reason: reason ?? null,
  }));
  process.stdout.write(JSON.stringify(summary) + '\n');
} catch (error) {
  process.stderr.write(`audit failed: ${error?.stack ?? error}\n`);
}
process.exitCode = 0;
