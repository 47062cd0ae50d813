// The operator's dashboard: the program's figures and charts, and its webhook deliveries,
// read with a partner token that has analytics:read and webhooks:manage.

import { html, render, useEffect, useState } from "/static/vendor/htm@3.1.1/standalone.module.js";
import { ApiError, DASHBOARD, demoSignIn, demoSignInOffered, graphql, session } from "./api.js";
import { PointsChart, TierChart, formatNumber } from "./charts.js";
import { Deliveries } from "./deliveries.js";

// What the chart shows: the current period and the ones before it, in the program's
// calendar (the gateway snaps `from` to the start of its day, week or month).
export const RANGES = {
  days: { interval: "DAY", label: "Last 30 days", caption: "Points issued and redeemed per day, last 30 days" },
  weeks: { interval: "WEEK", label: "Last 12 weeks", caption: "Points issued and redeemed per week, last 12 weeks" },
  months: { interval: "MONTH", label: "Last 12 months", caption: "Points issued and redeemed per month, last 12 months" },
};

export function rangeDates(name, now = new Date()) {
  const from = new Date(now);
  if (name === "days") from.setUTCDate(from.getUTCDate() - 29);
  if (name === "weeks") from.setUTCDate(from.getUTCDate() - 7 * 11);
  if (name === "months") from.setUTCMonth(from.getUTCMonth() - 11, 1);
  const to = new Date(now.getTime() + 1000);
  return { from: from.toISOString(), to: to.toISOString() };
}

function SignIn({ onToken }) {
  const [demo, setDemo] = useState(false);
  const [error, setError] = useState(null);
  useEffect(() => {
    demoSignInOffered().then(setDemo);
  }, []);

  const submit = (event) => {
    event.preventDefault();
    const field = event.target.elements.token;
    const token = field.value.trim();
    field.value = "";
    if (token) onToken(token);
    else setError("Paste a partner access token.");
  };
  const asStaff = async () => {
    try {
      onToken(await demoSignIn());
    } catch (e) {
      setError(e.message);
    }
  };

  return html`<section class="panel sign-in" aria-labelledby="sign-in-heading">
    <h2 id="sign-in-heading">Sign in</h2>
    <p>The dashboard reads the program with a partner token that has the scopes
      <code>analytics:read</code> and <code>webhooks:manage</code>. It is kept in this tab
      only and sent to this gateway only.</p>
    <form onSubmit=${submit}>
      <label for="token">Partner access token</label>
      <input id="token" name="token" type="password" autocomplete="off" spellcheck="false"
        aria-describedby=${error ? "sign-in-error" : null} />
      <button type="submit">Open the dashboard</button>
    </form>
    ${demo
      ? html`<p class="demo">This is the demo: <button type="button" onClick=${asStaff}>
          Sign in as demo staff</button></p>`
      : null}
    ${error ? html`<p id="sign-in-error" class="error" role="alert">${error}</p>` : null}
  </section>`;
}

function Figure({ label, value, detail }) {
  return html`<div class="figure">
    <dt>${label}</dt>
    <dd><span class="value">${value}</span>${detail ? html`<span class="detail">${detail}</span>` : null}</dd>
  </div>`;
}

function Stats({ stats }) {
  const rate = `${(stats.redemptionRate * 100).toFixed(1)}%`;
  return html`<section class="panel" aria-labelledby="stats-heading">
    <h2 id="stats-heading">The program</h2>
    <dl class="figures">
      <${Figure} label="Members" value=${formatNumber(stats.members)}
        detail=${`${formatNumber(stats.activeMembers30d)} active in the last 30 days`} />
      <${Figure} label="Points issued" value=${formatNumber(stats.pointsIssued)} />
      <${Figure} label="Points redeemed" value=${formatNumber(stats.pointsRedeemed)}
        detail=${`redemption rate ${rate}`} />
      <${Figure} label="Points expired" value=${formatNumber(stats.pointsExpired)} />
      <${Figure} label="Outstanding liability" value=${stats.liability}
        detail=${`${formatNumber(stats.outstandingPoints)} points available or held, at the point value`} />
    </dl>
  </section>`;
}

function Dashboard({ token, onSignOut }) {
  const [range, setRange] = useState("days");
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);

  useEffect(() => {
    let current = true;
    graphql(token, DASHBOARD, { ...rangeDates(range), interval: RANGES[range].interval })
      .then((found) => current && (setData(found), setError(null)))
      .catch((e) => {
        if (!current) return;
        if (e.code === "UNAUTHENTICATED") onSignOut("The token was refused; sign in again.");
        else if (e.code === "FORBIDDEN") setError("This token may not read the program's figures (it needs analytics:read).");
        else setError(e instanceof ApiError ? e.message : String(e));
      });
    return () => {
      current = false;
    };
  }, [token, range]);

  return html`
    <div class="toolbar">
      <label>Period
        <select value=${range} onChange=${(e) => setRange(e.target.value)}>
          ${Object.entries(RANGES).map(([key, r]) => html`<option value=${key}>${r.label}</option>`)}
        </select>
      </label>
      <button type="button" class="sign-out" onClick=${() => onSignOut(null)}>Sign out</button>
    </div>
    ${error ? html`<p class="error" role="alert">${error}</p>` : null}
    ${data
      ? html`<${Stats} stats=${data.programStats} />
        <section class="panel" aria-labelledby="chart-heading">
          <h2 id="chart-heading">Points over time</h2>
          <${PointsChart} buckets=${data.pointsSeries} interval=${RANGES[range].interval}
            caption=${RANGES[range].caption} />
        </section>
        <section class="panel" aria-labelledby="tier-heading">
          <h2 id="tier-heading">Tier mix</h2>
          <${TierChart} tiers=${data.programStats.tiers} />
        </section>`
      : error
        ? null
        : html`<p role="status">Loading the program's figures…</p>`}
    <${Deliveries} token=${token} onUnauthorized=${() => onSignOut("The token was refused; sign in again.")} />`;
}

function App() {
  const [token, setToken] = useState(session.token());
  const [notice, setNotice] = useState(null);
  const signIn = (value) => {
    session.keep(value);
    setNotice(null);
    setToken(value);
  };
  const signOut = (reason) => {
    session.forget();
    setNotice(reason);
    setToken(null);
  };
  return html`
    <header class="top"><h1>Loyalty program dashboard</h1></header>
    <main id="main">
      ${notice ? html`<p class="error" role="alert">${notice}</p>` : null}
      ${token ? html`<${Dashboard} token=${token} onSignOut=${signOut} />` : html`<${SignIn} onToken=${signIn} />`}
    </main>`;
}

render(html`<${App} />`, document.getElementById("app"));
