// <loyalty-widget>: a shopper's points and tier, live, on any page of the store.
//
//   <script src="https://loyalty.example/widget.js" defer></script>
//   <loyalty-widget></loyalty-widget>
//   <script>document.querySelector("loyalty-widget").token = memberToken;</script>
//
// The token is a short-lived member token from the store's identity provider. Set it as
// the `token` property (it is never written back to an attribute, so it stays out of
// the DOM); a `token` attribute is read too, for pages rendered by the store's server.
// Set it again when the store refreshes it. The gateway is the origin this script came
// from, or the `gateway` attribute. The widget sends the gateway its token and its two
// GraphQL documents, nothing else: no cookies (credentials "omit"), no referrer.
// On every change it dispatches a `loyalty-change` event ({available, pending, tier}).
"use strict";
var scriptOrigin = document.currentScript ? new URL(document.currentScript.src).origin : "";
var BALANCE = "query LoyaltyWidget { me { points { available pending } " +
  "tier { current { name } next { name } toNext } } }";
var LIVE = "subscription LoyaltyWidgetLive { pointsChanged { available pending tier } }";
var READ_AFTER_EVENT_MS = 100; // a burst of events is read once
var STYLE = [
  ":host { display: inline-block; font: 16px/1.4 system-ui, sans-serif; color: #1b1b1b; }",
  ".card { background: #fff; border: 1px solid #6b6b6b; border-radius: 8px; padding: 12px 16px; min-width: 12rem; }",
  ".points { font-size: 1.75rem; font-weight: 700; }",
  ".tier, .status { margin: 4px 0 0; color: #333; }",
  "p { margin: 0; }",
].join("\n");

function stylesheet() {
  var sheet = new CSSStyleSheet();
  sheet.replaceSync(STYLE); // constructed, so a store's style-src policy needs no change
  return sheet;
}

class LoyaltyWidget extends HTMLElement {
  static get observedAttributes() { return ["token", "gateway"]; }

  constructor() {
    super();
    this._token = null;
    this._client = null;
    this._dispose = null;
    this._shown = 0; // the newest answer or event shown: an older answer arriving late is dropped
    this.live = false; // true while the subscription's socket is open
    var root = this.attachShadow({ mode: "open" });
    root.adoptedStyleSheets = [stylesheet()];
    var card = document.createElement("section");
    card.className = "card";
    card.setAttribute("aria-label", "Loyalty points");
    card.setAttribute("part", "card");
    this._points = this._line(card, "p", "points-line");
    this._tier = this._line(card, "p", "tier");
    this._status = this._line(card, "p", "status");
    this._status.setAttribute("role", "status");
    root.appendChild(card);
    this._show("Sign in to see your points.");
  }

  _line(parent, tag, className) {
    var element = document.createElement(tag);
    element.className = className;
    parent.appendChild(element);
    return element;
  }

  get token() { return this._token; }
  set token(value) {
    this._token = value ? String(value) : null;
    this._restart();
  }

  get gateway() {
    return (this.getAttribute("gateway") || scriptOrigin).replace(/\/+$/, "");
  }

  attributeChangedCallback(name, previous, value) {
    if (name === "token") {
      this.token = value;
    } else if (previous !== value) {
      this._restart();
    }
  }

  connectedCallback() { this._restart(); }
  disconnectedCallback() { this._stop(); }

  _stop() {
    window.clearTimeout(this._later);
    if (this._dispose) this._dispose();
    if (this._client) this._client.dispose();
    this._dispose = this._client = null;
    this.live = false;
  }

  _restart() {
    this._stop();
    if (!this._token || !this.isConnected) return;
    var token = this._token;
    this._subscribe(token); // which loads the balance once connected
  }

  _load(token) {
    var widget = this;
    var ticket = ++this._shown;
    return fetch(this.gateway + "/graphql", {
      method: "POST",
      mode: "cors",
      credentials: "omit",
      referrerPolicy: "no-referrer",
      headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
      body: JSON.stringify({ query: BALANCE }),
    }).then(function (response) { return response.json(); }).then(function (body) {
      if (token !== widget._token || ticket !== widget._shown) return;
      var me = body.data && body.data.me;
      if (!me) {
        widget._show("Your points cannot be shown right now.");
        return;
      }
      widget._render(me.points.available, me.points.pending, me.tier.current.name, me.tier);
    }).catch(function () {
      if (token === widget._token) widget._show("Your points cannot be shown right now.");
    });
  }

  _subscribe(token) {
    var widget = this;
    var url = this.gateway.replace(/^http/, "ws") + "/graphql";
    this._client = graphqlWs.createClient({
      url: url,
      connectionParams: { Authorization: "Bearer " + token },
      retryAttempts: 5,
      shouldRetry: function (event) { return !(event && event.code === 4403); },
      on: {
        // (re)connected: read the balance again, for what changed while no socket was open
        connected: function () { widget.live = true; widget._load(token); },
        closed: function () { widget.live = false; },
      },
    });
    this._dispose = this._client.subscribe({ query: LIVE }, {
      next: function (result) {
        var event = result.data && result.data.pointsChanged;
        if (!event || token !== widget._token) return;
        widget._shown++;
        widget._render(event.available, event.pending, event.tier, null);
        // The distance to the next tier, read once a burst of events has passed.
        window.clearTimeout(widget._later);
        widget._later = window.setTimeout(function () { widget._load(token); }, READ_AFTER_EVENT_MS);
      },
      error: function () {
        if (token === widget._token) widget._status.textContent = "Live updates paused.";
      },
      complete: function () {},
    });
  }

  _show(message) {
    this._points.textContent = "";
    this._tier.textContent = "";
    this._status.textContent = message;
  }

  _render(available, pending, tierName, tier) {
    this._points.innerHTML = "";
    var number = document.createElement("span");
    number.className = "points";
    number.textContent = available.toLocaleString("en-US");
    this._points.appendChild(number);
    this._points.appendChild(document.createTextNode(" points"));
    var text = tierName + " member";
    if (tier && tier.next && tier.toNext !== null) {
      text += " · " + tier.toNext.toLocaleString("en-US") + " to " + tier.next.name;
    }
    this._tier.textContent = text;
    this._status.textContent = pending ? pending.toLocaleString("en-US") + " pending" : "";
    this.dispatchEvent(new CustomEvent("loyalty-change", {
      detail: { available: available, pending: pending, tier: tierName },
    }));
  }
}

if (!customElements.get("loyalty-widget")) {
  customElements.define("loyalty-widget", LoyaltyWidget);
}
