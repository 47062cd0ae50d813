// The Acme storefront's account area and checkout: a headless storefront over the
// loyalty gateway's public GraphQL API, signed in with the store's identity provider.
import { html, render, useCallback, useEffect, useRef, useState } from "/static/vendor/htm@3.1.1/standalone.module.js";
import { ApiError, checked, graphql, idempotencyKey, live, session, store } from "./api.js";
import { Checkout, History, Points, Rewards, Tier } from "./sections.js";

const ACCOUNT = `query StorefrontAccount {
  me {
    customerId name
    points { available pending held lifetimeEarned expiringSoon { points expiresAt } }
    tier { current { name threshold } next { name threshold } qualifyingValue toNext }
    availableRewards { id name cost }
    redemptions(first: 5) { edges { node { id code status createdAt reward { name } } } }
  }
}`;

// Events that come in a burst (a capture and the purchase it paid) are read once.
const READ_AFTER_EVENT_MS = 100;

const REDEEM = `mutation StorefrontRedeem($key: String!, $reward: ID!) {
  redeemReward(input: {idempotencyKey: $key, rewardId: $reward}) {
    redemption { id code status createdAt reward { name } }
    userErrors { code message }
  }
}`;

function SignIn({ onSignedIn, notice }) {
  const [email, setEmail] = useState("ada@example.com");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const answer = await store("sign-in", { email });
      session.start(answer.token);
      onSignedIn();
    } catch (failure) {
      setError(failure.message);
    } finally {
      setBusy(false);
    }
  };
  return html`
    <main class="sign-in">
      <h1>Acme store</h1>
      <form onSubmit=${submit} class="card" aria-labelledby="sign-in-title">
        <h2 id="sign-in-title">Sign in to see your rewards</h2>
        ${notice && html`<p role="status">${notice}</p>`}
        <label for="email">Email</label>
        <input id="email" name="email" type="email" autocomplete="email" required
          value=${email} onInput=${(e) => setEmail(e.target.value)} />
        <p class="hint" id="email-hint">Demo shoppers: ada@example.com, grace@example.com</p>
        <button type="submit" disabled=${busy}>Sign in</button>
        ${error && html`<p role="alert" class="error">${error}</p>`}
      </form>
    </main>`;
}

function PaidElsewhere({ onError }) {
  const [order, setOrder] = useState(null);
  const [busy, setBusy] = useState(false);
  const pay = async () => {
    setBusy(true);
    try {
      setOrder((await store("store-orders")).order);
    } catch (failure) {
      onError(failure);
    } finally {
      setBusy(false);
    }
  };
  return html`
    <section class="card" aria-labelledby="elsewhere-title">
      <h2 id="elsewhere-title">In the shop</h2>
      <p>An order of yours paid at the shop's till reaches your balance here, live.</p>
      <button type="button" onClick=${pay} disabled=${busy}>The store got paid</button>
      ${order && html`<p role="status" data-testid="till-order">Order ${order.name} paid at the till: $${order.total}</p>`}
    </section>`;
}

function Account({ onSignOut }) {
  const [me, setMe] = useState(null);
  const [points, setPoints] = useState(null);
  const [liveState, setLiveState] = useState("connecting");
  const [announcement, setAnnouncement] = useState("");
  const [error, setError] = useState(null);
  const [codes, setCodes] = useState([]);
  const [historyVersion, setHistoryVersion] = useState(0);
  const pending = useRef(null);
  const shown = useRef(0); // the newest answer or event shown: a late older answer is dropped

  const fail = useCallback((failure) => {
    if (failure instanceof ApiError && failure.code === "UNAUTHENTICATED") {
      onSignOut("Your session ended; sign in again.");
      return;
    }
    setError(failure.message);
  }, [onSignOut]);

  const load = useCallback(async () => {
    const ticket = ++shown.current;
    try {
      const data = await graphql(ACCOUNT);
      if (ticket !== shown.current) return;
      setMe(data.me);
      setPoints(data.me.points);
      setHistoryVersion((v) => v + 1);
    } catch (failure) {
      fail(failure);
    }
  }, [fail]);

  const connection = useCallback((state) => {
    setLiveState(state);
    if (state === "live") load(); // what changed while no socket was open
  }, [load]);

  useEffect(() => live((event) => {
    // The event carries the new balance: show it at once, then refresh the rest.
    shown.current++;
    setPoints((before) => ({ ...(before || {}), available: event.available, pending: event.pending, held: event.held }));
    setAnnouncement(`Your balance changed: ${event.available} points available, ${event.pending} pending.`);
    // The rest with one read (an event is published once its change is visible to reads).
    window.clearTimeout(pending.current);
    pending.current = window.setTimeout(load, READ_AFTER_EVENT_MS);
  }, connection), [load, connection]);

  const redeem = async (reward) => {
    setError(null);
    try {
      const data = await graphql(REDEEM, { key: idempotencyKey("redeem"), reward: reward.id });
      const redemption = checked(data.redeemReward).redemption;
      setCodes((before) => [redemption, ...before]);
      setAnnouncement(`${redemption.reward.name}: your code is ${redemption.code}`);
      load();
    } catch (failure) {
      fail(failure);
    }
  };

  if (!me || !points) {
    return html`<main><p class="loading">Loading your rewards…</p>${error && html`<p role="alert" class="error">${error}</p>`}</main>`;
  }
  return html`
    <header class="top">
      <p class="brand">Acme store</p>
      <p class="who">Signed in as ${me.name || me.customerId}</p>
      <p class="live" data-state=${liveState}>${liveState === "live" ? "Live" : "Reconnecting…"}</p>
      <button type="button" class="secondary" onClick=${() => onSignOut(null)}>Sign out</button>
    </header>
    <main>
      <h1>Your rewards</h1>
      <p class="visually-hidden" role="status" aria-live="polite">${announcement}</p>
      ${error && html`<p role="alert" class="error">${error}</p>`}
      <div class="grid">
        <${Points} points=${points} />
        <${Tier} tier=${me.tier} />
      </div>
      <${Rewards} rewards=${me.availableRewards} codes=${codes}
        redemptions=${me.redemptions.edges.map((e) => e.node)} onRedeem=${redeem} />
      <div class="grid">
        <${Checkout} available=${points.available} onError=${fail} onChange=${load} />
        <${PaidElsewhere} onError=${fail} />
      </div>
      <${History} version=${historyVersion} onError=${fail} />
    </main>`;
}

function App() {
  const [signedIn, setSignedIn] = useState(Boolean(session.token));
  const [notice, setNotice] = useState(null);
  const signOut = useCallback((message) => {
    session.end();
    setNotice(message);
    setSignedIn(false);
  }, []);
  return signedIn
    ? html`<${Account} onSignOut=${signOut} />`
    : html`<${SignIn} notice=${notice} onSignedIn=${() => { setNotice(null); setSignedIn(true); }} />`;
}

const root = document.getElementById("app");
root.textContent = ""; // the "Loading" line the page shows until this module runs
render(html`<${App} />`, root);
