// The account area's sections: points, tier, rewards, history, checkout.
import { html, useEffect, useState } from "/static/vendor/htm@3.1.1/standalone.module.js";
import { graphql, store } from "./api.js";

const number = (n) => Number(n).toLocaleString("en-US");
const day = (iso) => new Date(iso).toLocaleDateString("en-US", { year: "numeric", month: "short", day: "numeric" });

export function Points({ points }) {
  const expiring = points.expiringSoon || [];
  return html`
    <section class="card" aria-labelledby="points-title">
      <h2 id="points-title">Your points</h2>
      <p class="big"><span data-testid="points-available">${number(points.available)}</span> available</p>
      <dl class="figures">
        <div><dt>Pending</dt><dd data-testid="points-pending">${number(points.pending)}</dd></div>
        <div><dt>Held at checkout</dt><dd data-testid="points-held">${number(points.held)}</dd></div>
      </dl>
      <h3>Expiring soon</h3>
      ${expiring.length
        ? html`<ul data-testid="expiring">${expiring.map((e) => html`<li>${number(e.points)} points on ${day(e.expiresAt)}</li>`)}</ul>`
        : html`<p data-testid="expiring">None in the next 30 days.</p>`}
    </section>`;
}

export function Tier({ tier }) {
  const next = tier.next;
  return html`
    <section class="card" aria-labelledby="tier-title">
      <h2 id="tier-title">Your tier</h2>
      <p class="big" data-testid="tier-name">${tier.current.name}</p>
      ${next
        ? html`
          <label for="tier-progress">${number(tier.toNext)} points to ${next.name}</label>
          <progress id="tier-progress" data-testid="tier-progress"
            max=${next.threshold} value=${Math.min(tier.qualifyingValue, next.threshold)}>
            ${number(tier.qualifyingValue)} of ${number(next.threshold)}
          </progress>
          <p class="hint">${number(tier.qualifyingValue)} of ${number(next.threshold)} qualifying points</p>`
        : html`<p>You are in the top tier.</p>`}
    </section>`;
}

export function Rewards({ rewards, redemptions, codes, onRedeem }) {
  const [busy, setBusy] = useState(null);
  const redeem = async (reward) => {
    setBusy(reward.id);
    try { await onRedeem(reward); } finally { setBusy(null); }
  };
  const shown = [...codes, ...redemptions.filter((r) => !codes.some((c) => c.id === r.id))].slice(0, 5);
  return html`
    <section class="card" aria-labelledby="rewards-title">
      <h2 id="rewards-title">Rewards you can redeem now</h2>
      ${rewards.length
        ? html`<ul class="rewards">${rewards.map((r) => html`
            <li>
              <span>${r.name} <span class="cost">${number(r.cost)} points</span></span>
              <button type="button" onClick=${() => redeem(r)} disabled=${busy !== null}
                aria-label=${"Redeem " + r.name + " for " + r.cost + " points"}>Redeem</button>
            </li>`)}</ul>`
        : html`<p>Nothing yet: keep shopping to earn more points.</p>`}
      <h3>Your codes</h3>
      ${shown.length
        ? html`<ul class="codes" data-testid="codes">${shown.map((r) => html`
            <li><span>${r.reward.name}</span> <code>${r.code}</code> <span class="hint">${r.status.toLowerCase()}</span></li>`)}</ul>`
        : html`<p>No codes yet.</p>`}
    </section>`;
}

const HISTORY = `query StorefrontHistory($after: String) {
  me { transactions(first: 5, after: $after) {
    edges { cursor node { id kind points status reason orderId occurredAt } }
    pageInfo { hasNextPage endCursor } } }
}`;

const KINDS = { EARN: "Purchase", BONUS: "Bonus", REDEEM: "Redeemed", CANCEL: "Cancelled", REFUND: "Refund", ADJUST: "Adjustment", EXPIRE: "Expired" };

export function History({ version, onError }) {
  const [cursors, setCursors] = useState([null]); // the `after` of each page seen
  const [page, setPage] = useState(null);
  const after = cursors[cursors.length - 1];
  useEffect(() => {
    let current = true;
    graphql(HISTORY, { after }).then((data) => { if (current) setPage(data.me.transactions); }, onError);
    return () => { current = false; };
  }, [after, version]);
  if (!page) return html`<section class="card"><h2>History</h2><p>Loading…</p></section>`;
  const number_ = cursors.length;
  return html`
    <section class="card" aria-labelledby="history-title">
      <h2 id="history-title">History</h2>
      <table data-testid="history">
        <caption class="visually-hidden">Your points history, page ${number_}</caption>
        <thead><tr><th scope="col">Date</th><th scope="col">What</th><th scope="col">Points</th><th scope="col">Status</th></tr></thead>
        <tbody>${page.edges.map(({ node }) => html`
          <tr>
            <td>${day(node.occurredAt)}</td>
            <td>${KINDS[node.kind] || node.kind}${node.orderId ? " · order " + node.orderId : node.reason ? " · " + node.reason : ""}</td>
            <td class="number">${node.points > 0 ? "+" : ""}${number(node.points)}</td>
            <td>${node.status.toLowerCase()}</td>
          </tr>`)}</tbody>
      </table>
      <nav class="pager" aria-label="History pages">
        <button type="button" class="secondary" disabled=${cursors.length === 1}
          onClick=${() => setCursors(cursors.slice(0, -1))}>Newer</button>
        <span data-testid="history-page">Page ${number_}</span>
        <button type="button" class="secondary" disabled=${!page.pageInfo.hasNextPage}
          onClick=${() => setCursors([...cursors, page.pageInfo.endCursor])}>Older</button>
      </nav>
    </section>`;
}

const CART = [{ sku: "SNEAKER-CANVAS", quantity: 1 }, { sku: "SOCKS-WOOL", quantity: 1 }];

export function Checkout({ available, onError, onChange }) {
  const [checkout, setCheckout] = useState(null);
  const [busy, setBusy] = useState(false);
  const [wanted, setWanted] = useState(null); // the switch as turned, until the store answers
  const start = async () => {
    try { setCheckout(await store("checkouts", { lines: CART })); } catch (failure) { onError(failure); }
  };
  useEffect(() => { start(); }, []);
  const act = async (path, body) => {
    setBusy(true);
    try {
      setCheckout(await store(`checkouts/${checkout.id}/${path}`, body));
      onChange();
    } catch (failure) {
      onError(failure);
    } finally {
      setBusy(false);
      setWanted(null);
    }
  };
  if (!checkout) return html`<section class="card"><h2>Checkout</h2><p>Loading your cart…</p></section>`;
  const using = checkout.points > 0;
  return html`
    <section class="card" aria-labelledby="checkout-title">
      <h2 id="checkout-title">Checkout</h2>
      <table class="cart">
        <caption class="visually-hidden">Your cart</caption>
        <thead><tr><th scope="col">Item</th><th scope="col">Qty</th><th scope="col">Price</th></tr></thead>
        <tbody>${checkout.lines.map((l) => html`
          <tr><td>${l.title}</td><td class="number">${l.quantity}</td><td class="number">$${l.unitPrice}</td></tr>`)}</tbody>
      </table>
      <p class="line"><span>Subtotal</span> <span data-testid="subtotal">$${checkout.subtotal}</span></p>
      ${checkout.paid
        ? html`
          <p role="status" data-testid="paid">Paid: order ${checkout.order.name}, $${checkout.order.total}${using ? `, ${number(checkout.points)} points used` : ""}.</p>
          <button type="button" onClick=${start}>Start a new order</button>`
        : html`
          <div class="switch">
            <input type="checkbox" role="switch" id="use-points" checked=${wanted === null ? using : wanted}
              disabled=${busy || (!using && available <= 0)}
              onChange=${(e) => { setWanted(e.target.checked); act("points", { use: e.target.checked }); }} />
            <label for="use-points">Use my points</label>
          </div>
          <p class="line"><span>Points discount</span> <span data-testid="discount">−$${checkout.discount}</span></p>
          ${using && html`<p class="hint" data-testid="hold">${number(checkout.points)} points held for this order</p>`}
          <p class="line total"><span>Total</span> <span data-testid="total">$${checkout.total}</span></p>
          <button type="button" onClick=${() => act("pay", {})} disabled=${busy}>Pay $${checkout.total}</button>`}
    </section>`;
}
