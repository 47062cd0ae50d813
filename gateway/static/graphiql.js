// GraphiQL over this gateway: queries and mutations by POST, subscriptions over
// graphql-transport-ws with the Authorization header of the Headers tab in the
// connection_init payload (DESIGN §4). Nothing is stored outside this tab.
(function () {
  "use strict";
  var endpoint = new URL("/graphql", window.location.href).href;
  var sockets = {};

  function socketFor(authorization) {
    var key = authorization || "";
    if (!sockets[key]) {
      sockets[key] = graphqlWs.createClient({
        url: endpoint.replace(/^http/, "ws"),
        lazy: true,
        connectionParams: authorization ? { Authorization: authorization } : {},
      });
    }
    return sockets[key];
  }

  function isSubscription(params) {
    var text = (params.query || "").replace(/#[^\n]*/g, "");
    if (params.operationName) {
      return new RegExp("\\bsubscription\\s+" + params.operationName + "\\b").test(text);
    }
    return /^\s*subscription\b/.test(text);
  }

  function header(headers, name) {
    for (var key in headers || {}) {
      if (key.toLowerCase() === name) return headers[key];
    }
    return undefined;
  }

  function fetcher(params, options) {
    var headers = (options && options.headers) || {};
    if (isSubscription(params)) {
      var client = socketFor(header(headers, "authorization"));
      return {
        subscribe: function (sink) {
          var dispose = client.subscribe(params, {
            next: function (value) { sink.next(value); },
            error: function (error) { sink.error(error); },
            complete: function () { sink.complete(); },
          });
          return { unsubscribe: dispose };
        },
      };
    }
    var sent = Object.assign(
      { "Content-Type": "application/json", Accept: "application/json" },
      headers
    );
    return fetch(endpoint, {
      method: "POST",
      headers: sent,
      body: JSON.stringify(params),
      credentials: "omit",
    }).then(function (response) { return response.json(); });
  }

  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      shouldPersistHeaders: false,
    })
  );
})();
