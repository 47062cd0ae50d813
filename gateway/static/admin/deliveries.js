// Recent webhook deliveries, in (from the store's platforms) and out (to the program's
// endpoints): failures stand out, and a failed outgoing one can be sent again.

import { html, useCallback, useEffect, useRef, useState } from "/static/vendor/htm@3.1.1/standalone.module.js";
import { DELIVERIES, RETRY, graphql } from "./api.js";

const PAGE = 20;
const MOST = 100; // the API's largest page
const POLL_MS = 1000;
const POLL_ROUNDS = 30;
const FAILED_OUTCOMES = new Set(["DEAD", "REFUSED", "DISABLED", "REJECTED", "FAILED"]);

// Failed: an outcome that is one, or an outgoing delivery waiting for another attempt
// after an answer that was not 2xx (or no answer at all).
export function failed(delivery) {
  if (FAILED_OUTCOMES.has(delivery.outcome)) return true;
  const answered = delivery.lastStatus !== null && delivery.lastStatus >= 200 && delivery.lastStatus < 300;
  return delivery.outcome === "PENDING" && delivery.attemptCount > 0 && !answered;
}

function outcomeText(delivery) {
  if (delivery.outcome === "PENDING" && failed(delivery)) return "Failed, retrying";
  const text = delivery.outcome.toLowerCase();
  return text[0].toUpperCase() + text.slice(1);
}

const time = (iso) =>
  iso ? new Date(iso).toLocaleString("en-US", { dateStyle: "medium", timeStyle: "medium" }) : "—";

function Row({ delivery, onRetry, busy }) {
  const bad = failed(delivery);
  const out = delivery.direction === "OUT";
  return html`<tr class=${bad ? "failed" : ""} data-id=${delivery.id} data-outcome=${delivery.outcome}>
    <td>${out ? "Out" : "In"}</td>
    <td>${delivery.topic}</td>
    <td class="endpoint">${out ? delivery.url : delivery.source}</td>
    <td><span class=${`outcome ${bad ? "bad" : "ok"}`}>${bad ? "⚠ " : ""}${outcomeText(delivery)}</span></td>
    <td class="number">${delivery.attemptCount}</td>
    <td class="number">${delivery.lastStatus ?? "—"}</td>
    <td>${time(delivery.updatedAt)}</td>
    <td>${out && bad
      ? html`<button type="button" class="retry" disabled=${busy}
          aria-label=${`Retry delivery ${delivery.id} (${delivery.topic})`}
          onClick=${() => onRetry(delivery)}>Retry</button>`
      : null}</td>
  </tr>`;
}

export function Deliveries({ token, onUnauthorized }) {
  const [rows, setRows] = useState([]);
  const [page, setPage] = useState({ hasNextPage: false, endCursor: null });
  const [direction, setDirection] = useState("");
  const [failedOnly, setFailedOnly] = useState(false);
  const [error, setError] = useState(null);
  const [status, setStatus] = useState("");
  const [loading, setLoading] = useState(true);
  const [retrying, setRetrying] = useState(null);
  const shown = useRef(PAGE);

  const load = useCallback(
    async (after = null) => {
      setLoading(true);
      try {
        const data = await graphql(token, DELIVERIES, {
          first: after ? PAGE : Math.min(MOST, shown.current),
          after,
          direction: direction || null,
          failedOnly,
        });
        const found = data.webhookDeliveries;
        const nodes = found.edges.map((e) => e.node);
        setRows((old) => (after ? [...old, ...nodes] : nodes));
        setPage(found.pageInfo);
        setError(null);
        return nodes;
      } catch (e) {
        if (e.code === "UNAUTHENTICATED") onUnauthorized();
        setError(e.code === "FORBIDDEN" ? "This token may not see webhook deliveries (it needs webhooks:manage)." : e.message);
        return [];
      } finally {
        setLoading(false);
      }
    },
    [token, direction, failedOnly],
  );

  useEffect(() => {
    shown.current = PAGE;
    load();
  }, [load]);

  const more = async () => {
    const nodes = await load(page.endCursor);
    shown.current += nodes.length;
  };

  const retry = async (delivery) => {
    setRetrying(delivery.id);
    setStatus(`Sending delivery ${delivery.id} again…`);
    try {
      const data = await graphql(token, RETRY, { id: delivery.id });
      const payload = data.retryWebhookDelivery;
      if (payload.userErrors.length) {
        setStatus(`Delivery ${delivery.id} was not sent again: ${payload.userErrors[0].message}`);
        return;
      }
      setRows((old) => old.map((r) => (r.id === delivery.id ? payload.delivery : r)));
      // The dispatcher sends it at once; follow it until it has an outcome.
      for (let round = 0; round < POLL_ROUNDS; round++) {
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        const nodes = await load();
        const now = nodes.find((r) => r.id === delivery.id);
        if (now && now.outcome !== "PENDING") {
          setStatus(`Delivery ${delivery.id}: ${outcomeText(now).toLowerCase()}.`);
          return;
        }
        if (now && failed(now) && now.attemptCount > delivery.attemptCount) {
          setStatus(`Delivery ${delivery.id} failed again (${now.lastStatus ?? "no answer"}).`);
          return;
        }
      }
      setStatus(`Delivery ${delivery.id} is still waiting to be sent.`);
    } catch (e) {
      setStatus(`Delivery ${delivery.id} was not sent again: ${e.message}`);
    } finally {
      setRetrying(null);
    }
  };

  return html`<section class="panel" aria-labelledby="deliveries-heading">
    <h2 id="deliveries-heading">Webhook deliveries</h2>
    <form class="filters" onSubmit=${(e) => { e.preventDefault(); load(); }}>
      <label>Direction
        <select value=${direction} onChange=${(e) => setDirection(e.target.value)}>
          <option value="">In and out</option>
          <option value="IN">In (from platforms)</option>
          <option value="OUT">Out (to endpoints)</option>
        </select>
      </label>
      <label class="check"><input type="checkbox" checked=${failedOnly}
        onChange=${(e) => setFailedOnly(e.target.checked)} /> Failed only</label>
      <button type="submit">Refresh</button>
    </form>
    <p class="status" role="status" aria-live="polite">${status}</p>
    ${error ? html`<p class="error" role="alert">${error}</p>` : null}
    ${!error && !loading && rows.length === 0 ? html`<p>No deliveries yet.</p>` : null}
    ${rows.length
      ? html`<div class="scroll"><table class="deliveries" aria-busy=${loading ? "true" : "false"}>
          <caption class="visually-hidden">Recent webhook deliveries, newest first</caption>
          <thead><tr>
            <th scope="col">Direction</th><th scope="col">Topic</th><th scope="col">Endpoint or source</th>
            <th scope="col">Outcome</th><th scope="col" class="number">Attempts</th>
            <th scope="col" class="number">Last status</th>
            <th scope="col">Updated</th><th scope="col"><span class="visually-hidden">Actions</span></th>
          </tr></thead>
          <tbody>${rows.map((d) => html`<${Row} key=${d.id} delivery=${d} onRetry=${retry} busy=${retrying !== null} />`)}</tbody>
        </table></div>`
      : null}
    ${page.hasNextPage ? html`<button type="button" onClick=${more}>Load more</button>` : null}
  </section>`;
}
