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

  // GraphiQL 3 leaves its editors' text areas unlabelled and their scroll regions out of
  // the keyboard's reach; name each after its editor and let the scroll region take focus
  // (GraphiQL renders and re-renders them, so this follows the DOM).
  function editorName(editor) {
    if (editor.closest(".graphiql-query-editor")) return "Query editor";
    if (editor.closest(".graphiql-response")) return "Response";
    var tool = editor.closest(".graphiql-editor-tool .graphiql-editor");
    if (tool) {
      var tabs = document.querySelectorAll(".graphiql-editor-tools button[role=tab]");
      for (var i = 0; i < tabs.length; i += 1) {
        if (tabs[i].getAttribute("aria-selected") === "true") return tabs[i].textContent + " editor";
      }
      return "Editor";
    }
    return "Editor";
  }

  function labelEditors(container) {
    var editors = container.querySelectorAll(".CodeMirror");
    for (var i = 0; i < editors.length; i += 1) {
      var name = editorName(editors[i]);
      var area = editors[i].querySelector("textarea");
      if (area && area.getAttribute("aria-label") !== name) area.setAttribute("aria-label", name);
      var scroll = editors[i].querySelector(".CodeMirror-scroll");
      if (scroll && scroll.getAttribute("tabindex") !== "0") {  // CodeMirror sets -1
        scroll.setAttribute("tabindex", "0");
        scroll.setAttribute("role", "region");
        scroll.setAttribute("aria-label", name + " (scroll)");
      }
    }
  }

  var container = document.getElementById("graphiql");
  new MutationObserver(function () { labelEditors(container); }).observe(container, {
    childList: true,
    subtree: true,
    attributes: true,
    attributeFilter: ["aria-selected", "class"],
  });

  var root = ReactDOM.createRoot(container);
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      shouldPersistHeaders: false,
    })
  );
})();
