// Our Solana Actions, judged with the official @solana/actions package: responses typed
// with its spec types (compiled with tsc --strict), headers compared with its
// createActionHeaders, the solana-action: URL read with its parseURL, and the action's
// transaction fetched and checked with its fetchTransaction, then signed and sent.
import {
  ACTIONS_CORS_HEADERS,
  createActionHeaders,
  fetchTransaction,
  parseURL,
  type ActionError,
  type ActionGetResponse,
  type ActionPostResponse,
  type ActionsJson,
} from "@solana/actions";
import { Connection, Keypair } from "@solana/web3.js";

const env = (name: string): string => {
  const v = process.env[name];
  if (v === undefined || v === "") throw new Error(`${name} is not set`);
  return v;
};

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`check failed: ${what}`);
}

const base = env("ACTIONS_BASE");
const httpsAction = env("ACTIONS_HTTPS_URL");
const paymentId = env("ACTIONS_PAYMENT");
const hostileId = env("ACTIONS_HOSTILE");
const chainId = env("ACTIONS_CHAIN_ID");
const wallet = Keypair.fromSecretKey(Uint8Array.from(JSON.parse(env("ACTIONS_WALLET")) as number[]));

const expected = createActionHeaders({ chainId, actionVersion: "2.4" });

function headersOf(r: Response): Record<string, string> {
  const out: Record<string, string> = {};
  r.headers.forEach((v, k) => {
    out[k.toLowerCase()] = v;
  });
  return out;
}

// Every header the helper says an Action API sends (CORS, version, chain), as it says.
function specHeaders(r: Response, what: string): void {
  const got = headersOf(r);
  for (const [k, v] of Object.entries(expected)) {
    if (k.toLowerCase() === "content-type") continue;
    check(got[k.toLowerCase()] === v, `${what}: header ${k} = ${got[k.toLowerCase()]} (expected ${v})`);
  }
}

async function json<T>(r: Response): Promise<T> {
  return (await r.json()) as T;
}

async function main(): Promise<void> {
  const origin = { Origin: "https://dial.to" };

  // actions.json at the root maps the checkout pages to the action API.
  const rulesResp = await fetch(`${base}/actions.json`, { headers: origin });
  check(rulesResp.status === 200, `actions.json ${rulesResp.status}`);
  specHeaders(rulesResp, "actions.json");
  const rules: ActionsJson = await json<ActionsJson>(rulesResp);
  const pay = rules.rules.find((r) => r.pathPattern === "/pay/*");
  check(pay !== undefined && pay.apiPath === "/api/v1/actions/pay/*", `rules ${JSON.stringify(rules)}`);

  // A browser's preflight from any origin.
  const action = `${base}/api/v1/actions/pay/${paymentId}`;
  const pre = await fetch(action, {
    method: "OPTIONS",
    headers: { ...origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type" },
  });
  check(pre.status === 200 || pre.status === 204, `preflight ${pre.status}`);
  specHeaders(pre, "preflight");
  check(
    headersOf(pre)["access-control-allow-headers"] === ACTIONS_CORS_HEADERS["Access-Control-Allow-Headers"],
    "preflight allow-headers",
  );

  // GET: what a Blink shows.
  const getResp = await fetch(action, { headers: origin });
  check(getResp.status === 200, `action GET ${getResp.status}`);
  specHeaders(getResp, "action GET");
  const meta: ActionGetResponse = await json<ActionGetResponse>(getResp);
  check(meta.type === "action", "type");
  check(/^https?:\/\//.test(meta.icon), `icon ${meta.icon}`);
  check(meta.label.length > 0 && meta.title.length > 0 && meta.description.length > 0, "texts");
  const linked = meta.links?.actions ?? [];
  check(linked.length === 1 && linked[0]?.type === "transaction", `links ${JSON.stringify(meta.links)}`);

  // A label full of markup reaches the wallet as text only.
  const hostile: ActionGetResponse = await json<ActionGetResponse>(
    await fetch(`${base}/api/v1/actions/pay/${hostileId}`, { headers: origin }),
  );
  for (const text of [hostile.title, hostile.description, hostile.label, ...(hostile.links?.actions ?? []).map((a) => a.label)]) {
    check(!/[<>]/.test(text), `markup in ${text}`);
  }

  // Errors are {message}.
  const missing = await fetch(`${base}/api/v1/actions/pay/00000000-0000-4000-8000-000000000000`, { headers: origin });
  check(missing.status === 404, `unknown intent ${missing.status}`);
  specHeaders(missing, "404");
  const missingBody: ActionError = await json<ActionError>(missing);
  check(typeof missingBody.message === "string" && missingBody.message.length > 0, "404 message");
  const bad = await fetch(action, {
    method: "POST",
    headers: { ...origin, "Content-Type": "application/json" },
    body: JSON.stringify({ account: "not-a-key" }),
  });
  check(bad.status >= 400 && bad.status < 500, `bad account ${bad.status}`);
  const badBody: ActionError = await json<ActionError>(bad);
  check(typeof badBody.message === "string" && badBody.message.length > 0, "bad account message");
  const notJson = await fetch(action, { method: "POST", headers: origin, body: "account=x" });
  const notJsonBody: ActionError = await json<ActionError>(notJson);
  check(notJson.status === 415 && notJsonBody.message.length > 0, `not json ${notJson.status}`);

  // The solana-action: URL of an https deployment, as @solana/actions reads it.
  const parsed = parseURL(`solana-action:${httpsAction}`);
  check("link" in parsed && parsed.link.toString() === httpsAction, `parseURL ${JSON.stringify(parsed)}`);

  // POST: the helper fetches and checks the transaction (fee payer, signatures), the
  // wallet signs and sends it.
  const connection = new Connection(env("RPC_URL"), "confirmed");
  const posted = await fetchTransaction(connection, action, { account: wallet.publicKey.toBase58() });
  const raw: ActionPostResponse = await json<ActionPostResponse>(
    await fetch(action, {
      method: "POST",
      headers: { ...origin, "Content-Type": "application/json" },
      body: JSON.stringify({ account: wallet.publicKey.toBase58() }),
    }),
  );
  check(raw.type === "transaction", `post type ${raw.type}`);
  check(typeof raw.message === "string" && !/[<>]/.test(raw.message), `post message ${raw.message}`);
  posted.transaction.partialSign(wallet);
  const signature = await connection.sendRawTransaction(posted.transaction.serialize());

  console.log(JSON.stringify({ signature, label: meta.label, title: meta.title, icon: meta.icon, hostile }));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
