// The dashboard's calls to the gateway: GraphQL over POST with the partner token, and the
// demo's staff sign-in. The token lives in this tab only (sessionStorage: gone when the
// tab closes), travels in the Authorization header only, never in a URL; no cookies.

const TOKEN_KEY = "loyalty-admin-token";

export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  keep: (token) => sessionStorage.setItem(TOKEN_KEY, token),
  forget: () => sessionStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

export async function graphql(token, query, variables = {}) {
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer",
    });
  } catch {
    throw new ApiError("The gateway cannot be reached.", "NETWORK");
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`The gateway answered ${response.status}.`, `HTTP_${response.status}`);
  }
  if (body.errors && body.errors.length) {
    const first = body.errors[0];
    throw new ApiError(first.message, (first.extensions && first.extensions.code) || "ERROR");
  }
  return body.data;
}

// The demo offers staff a sign-in of its own (`/admin/session`); another gateway answers
// 404 there, and the dashboard asks for a token only.
export async function demoSignInOffered() {
  try {
    const response = await fetch("/admin/session", { credentials: "omit", cache: "no-store" });
    return response.ok && (await response.json()).demoStaff === true;
  } catch {
    return false;
  }
}

export async function demoSignIn() {
  const response = await fetch("/admin/session", {
    method: "POST",
    credentials: "omit",
    cache: "no-store",
  });
  if (!response.ok) throw new ApiError("The demo sign-in is not available.", "DEMO_SIGN_IN");
  return (await response.json()).access_token;
}

export const DASHBOARD = `query Dashboard($from: DateTime!, $to: DateTime!, $interval: Interval!) {
  programStats {
    members activeMembers30d pointsIssued pointsRedeemed pointsExpired
    outstandingPoints liability redemptionRate tiers { tier members }
  }
  pointsSeries(from: $from, to: $to, interval: $interval) { start issued redeemed expired }
}`;

const DELIVERY_FIELDS = `id direction source url topic outcome attemptCount lastStatus
  nextAttemptAt updatedAt`;

export const DELIVERIES = `query Deliveries($first: Int!, $after: String,
    $direction: WebhookDirection, $failedOnly: Boolean) {
  webhookDeliveries(first: $first, after: $after, direction: $direction, failedOnly: $failedOnly) {
    edges { cursor node { ${DELIVERY_FIELDS} } }
    pageInfo { hasNextPage endCursor }
  }
}`;

export const RETRY = `mutation Retry($id: ID!) {
  retryWebhookDelivery(input: { id: $id }) {
    delivery { ${DELIVERY_FIELDS} }
    userErrors { code message }
  }
}`;
