// The storefront's two back ends, as a headless storefront has them: the loyalty
// gateway's public GraphQL API (with the shopper's member token) and the store's own
// backend (`/demo/api/...`: sign-in, checkout). The member token lives in this tab's
// sessionStorage only: never in a URL, a cookie or localStorage.
const ENDPOINT = new URL("/graphql", window.location.href).href;
const TOKEN_KEY = "acme.memberToken";

export const session = {
  get token() { return window.sessionStorage.getItem(TOKEN_KEY); },
  start(token) { window.sessionStorage.setItem(TOKEN_KEY, token); },
  end() { window.sessionStorage.removeItem(TOKEN_KEY); },
};

export class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

export function idempotencyKey(prefix) {
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return prefix + "-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function authorization() {
  const token = session.token;
  return token ? { Authorization: "Bearer " + token } : {};
}

export async function graphql(query, variables = {}) {
  const response = await fetch(ENDPOINT, {
    method: "POST",
    credentials: "omit",
    headers: { "Content-Type": "application/json", Accept: "application/json", ...authorization() },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json().catch(() => ({}));
  if (body.errors && body.errors.length) {
    const first = body.errors[0];
    throw new ApiError(first.message, (first.extensions || {}).code || String(response.status));
  }
  if (!response.ok || !body.data) throw new ApiError("the loyalty service did not answer", String(response.status));
  return body.data;
}

// A payload's userErrors as an exception, so that callers handle one kind of failure.
export function checked(payload) {
  const errors = (payload && payload.userErrors) || [];
  if (errors.length) throw new ApiError(errors[0].message, errors[0].code);
  return payload;
}

export async function store(path, body = {}) {
  const response = await fetch("/demo/api/" + path, {
    method: "POST",
    credentials: "omit",
    headers: { "Content-Type": "application/json", ...authorization() },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(answer.message || "the store did not answer", answer.error || String(response.status));
  return answer;
}

// pointsChanged over graphql-transport-ws; the token goes in connection_init.
const LIVE = "subscription StorefrontLive { pointsChanged { kind delta available pending held tier occurredAt } }";

// onState("live") on every (re)connection: read what may have changed while offline.
export function live(onEvent, onState) {
  const token = session.token;
  const client = graphqlWs.createClient({
    url: ENDPOINT.replace(/^http/, "ws"),
    connectionParams: { Authorization: "Bearer " + token },
    retryAttempts: 10,
    shouldRetry: (event) => !(event && event.code === 4403),
    on: {
      connected: () => onState("live"),
      closed: () => onState("offline"),
    },
  });
  const dispose = client.subscribe({ query: LIVE }, {
    next: (result) => { if (result.data) onEvent(result.data.pointsChanged); },
    error: () => onState("offline"),
    complete: () => onState("offline"),
  });
  return () => { dispose(); client.dispose(); };
}
