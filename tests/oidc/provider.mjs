// A real OpenID provider for chatd's single sign-on tests: panva's oidc-provider (OpenID Certified), with its
// development login form (any login name signs in as that subject; no password is checked).
//
//   PORT=0 CLIENTS='[{"client_id": ..., "client_secret": ..., "redirect_uris": [...]}]' node provider.mjs
//
// It prints "listening <issuer>" once it serves. Two test-only routes steer it (the tests' only levers):
//   POST /__test/account  {"sub": ..., "claims": {...}}  the claims that subject's ID tokens carry
//   POST /__test/mode     {"mode": ...}                  how the next token answers' ID tokens are spoilt:
//     ""          as issued (the default)
//     "tamper"    a claim changed after signing (the signature no longer matches)
//     "audience"  re-signed with the provider's own key, for another client
//     "expired"   re-signed with the provider's own key, expired an hour ago
//     "nonce"     re-signed with the provider's own key, with another nonce
//     "alg-none"  unsigned ("alg": "none")
//     "hs256"     signed with HS256 keyed by the client secret (the algorithm-confusion attack)
// Everything else is the library's own: discovery, JWKS, the authorization endpoint with PKCE, the token
// endpoint with client authentication and one-use codes.

import { createServer } from "node:http";
import * as jose from "jose";
import Provider from "oidc-provider";

const clients = JSON.parse(process.env.CLIENTS ?? "[]");
const { privateKey } = await jose.generateKeyPair("RS256", { extractable: true });
const signingJwk = { ...(await jose.exportJWK(privateKey)), kid: "test-key-1", alg: "RS256", use: "sig" };
const accounts = new Map();
let mode = "";

function claimsOf(sub) {
  return {
    sub,
    preferred_username: sub,
    email: `${sub}@example.com`,
    email_verified: true,
    ...(accounts.get(sub) ?? {}),
  };
}

const server = createServer();
await new Promise((resolve) => server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingJwk] },
  cookies: { keys: ["chatd-tests-only"] },
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["preferred_username", "name"] },
  // Put the scopes' claims in the ID token too, as most providers do; chatd reads them from there.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, sub) {
    return { accountId: sub, claims: async () => claimsOf(sub) };
  },
});

async function readJson(ctx) {
  let text = "";
  for await (const chunk of ctx.req) text += chunk;
  return JSON.parse(text || "{}");
}

async function spoil(idToken) {
  const [head, body] = idToken.split(".");
  const claims = JSON.parse(Buffer.from(body, "base64url").toString());
  const now = Math.floor(Date.now() / 1000);
  if (mode === "tamper") {
    const forged = Buffer.from(JSON.stringify({ ...claims, sub: "mallory" })).toString("base64url");
    return [head, forged, idToken.split(".")[2]].join(".");
  }
  if (mode === "alg-none") {
    const none = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
    return `${none}.${body}.`;
  }
  if (mode === "hs256") {
    const secret = new TextEncoder().encode(clients[0].client_secret);
    return new jose.CompactSign(Buffer.from(body, "base64url")).setProtectedHeader({ alg: "HS256" }).sign(secret);
  }
  const changed = {
    audience: { aud: "someone-else" },
    expired: { iat: now - 7200, exp: now - 3600 },
    nonce: { nonce: "not-the-one-chatd-sent" },
  }[mode];
  const header = JSON.parse(Buffer.from(head, "base64url").toString());
  const key = await jose.importJWK(signingJwk, "RS256");
  return new jose.CompactSign(new TextEncoder().encode(JSON.stringify({ ...claims, ...changed })))
    .setProtectedHeader(header)
    .sign(key);
}

provider.use(async (ctx, next) => {
  if (ctx.method === "POST" && ctx.path === "/__test/account") {
    const { sub, claims } = await readJson(ctx);
    accounts.set(sub, claims);
    ctx.body = { ok: true };
    return;
  }
  if (ctx.method === "POST" && ctx.path === "/__test/mode") {
    mode = (await readJson(ctx)).mode ?? "";
    ctx.body = { ok: true, mode };
    return;
  }
  await next();
  if (ctx.path === "/token" && ctx.status === 200 && mode && ctx.body?.id_token) {
    ctx.body = { ...ctx.body, id_token: await spoil(ctx.body.id_token) };
  }
});

server.on("request", provider.callback());
console.log(`listening ${issuer}`);
