// One subscription with the graphql-ws client over graphql-transport-ws, as a browser or
// React Native app would open it: prints each `next` payload as a JSON line, then exits
// after `count` of them.
//   node tests/audit/subscribe.mjs WS_URL TOKEN QUERY COUNT
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, token, query, count] = process.argv.slice(2);
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
  retryAttempts: 0,
  lazy: false,
  on: { connected: () => console.error("connected") },
});

let received = 0;
const done = new Promise((resolve, reject) => {
  client.subscribe(
    { query },
    {
      next: (value) => {
        process.stdout.write(JSON.stringify(value) + "\n");
        received += 1;
        if (received >= Number(count)) resolve();
      },
      error: (error) => reject(error),
      complete: () => resolve(),
    },
  );
});

try {
  await done;
  await client.dispose();
  process.exit(0);
} catch (error) {
  console.error(JSON.stringify({ code: error?.code, reason: error?.reason, message: String(error?.message ?? error) }));
  await client.dispose();
  process.exit(1);
}
