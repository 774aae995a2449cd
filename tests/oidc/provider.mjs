// A real OpenID provider (npm `oidc-provider`) shaped like Zitadel for toolgate's token
// verification tests. Owns: the provider, its signing keys, and the test-only admin routes.
//
// Usage: node tests/oidc/provider.mjs [port]   (port 0 or absent: any free port)
// Config JSON on stdin:
//   {
//     "clients": [{ "client_id", "client_secret",
//                   "format": "jwt" | "opaque",              (default "jwt")
//                   "alg": "RS256" | "PS256" | "ES256" | "EdDSA" | "HS256",  (default "RS256")
//                   "ttl": seconds,                          (default 600)
//                   "claims": { ...extra access-token claims, e.g. Zitadel role objects },
//                   Optional, for a browser sign-in client (authorization code + PKCE):
//                   "grant_types": ["authorization_code"], "redirect_uris": [...],
//                   "token_endpoint_auth_method": "none" (public client: PKCE required) }],
//     "introspectors": [{ "client_id", "client_secret" }],          (client_secret_basic)
//     "keyFileIntrospectors": [{ "client_id", "key_file" }]         (private_key_jwt; the key
//          is generated here and written to key_file in Zitadel's API-app key format)
//   }
// Tokens are requested with client_credentials and `resource=<URI>` (RFC 8707); the resource
// becomes `aud`, except `urn:zitadel:iam:org:project:id:{projectId}:aud` → `aud: projectId`.
// An authorization-code client is a native app (RFC 8252 §7.3: a loopback redirect URI matches
// on any port, so `http://127.0.0.1/approvals/callback` fits a server on a random port). It
// asks for its audience the Zitadel way, with the scope
// `urn:zitadel:iam:org:project:id:{projectId}:aud`: that scope becomes its resource, so its
// access token is a JWT with `aud: projectId` and the client's `claims`. Dev interactions are
// on when such a client exists: any login name signs in (it becomes `sub`), then a consent page.
// Prints one line `{"issuer": "http://127.0.0.1:PORT"}` on stdout once it listens.
//
// Admin routes (test-only, not part of any IdP):
//   POST /__rotate         new RSA key with a new kid; it signs every later RS256/PS256 token
//                          and is published first in the JWKS (old keys stay published)
//   POST /__clock?offset=N shift this process's clock by N seconds (expired/future tokens)
//   GET  /__stats          {"jwks": n, "introspection": n, "token": n} requests served
//                          (answered or failed by /__fail)
//   POST /__fail?status=N  answer every other request (discovery, JWKS, token, introspection)
//                          with HTTP N and {"error": "server_error"} as an issuer in an outage
//                          does; status=0 ends it
//   POST /__forge          {"header": {…}, "claims": {…}} → {"token"}: a JWT signed RS256 with
//                          the current published key, header and claims exactly as given on top
//                          of {alg, typ, kid} and {iss, sub, iat, exp}: the hostile-token suite's
//                          tokens that a real issuer's key signed but a verifier must refuse

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import Provider from 'oidc-provider';

// stdout carries only the ready line (the test may stop reading it): everything else → stderr.
console.log = console.error;
console.info = console.error;
process.stdout.on('error', () => {});

const realNow = Date.now.bind(Date);
let clockOffsetMs = 0;
Date.now = () => realNow() + clockOffsetMs;

const readStdin = async () => {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8').trim();
  return text ? JSON.parse(text) : {};
};

const config = await readStdin();
const port = Number(process.argv[2] ?? 0);

const clients = config.clients ?? [];
const byClientId = new Map(clients.map((c) => [c.client_id, c]));

let rsaGeneration = 0;
const newRsaKey = () => {
  rsaGeneration += 1;
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  // No `alg` on the JWK: the provider may then sign both RS256 and PS256 with it, which lets the
  // tests show that the verifier takes the algorithm from the key, not from the token.
  return { ...privateKey.export({ format: 'jwk' }), kid: `rsa-${rsaGeneration}`, use: 'sig' };
};
const ecKey = {
  ...crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }),
  kid: 'ec-1',
  use: 'sig',
  alg: 'ES256',
};
const edKey = {
  ...crypto.generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }),
  kid: 'ed-1',
  use: 'sig',
  alg: 'EdDSA',
};
let rsaKeys = [newRsaKey()];

// private_key_jwt introspection clients: generate the key and write it the way Zitadel hands
// out API-app keys ({"type":"application","keyId","key"(PKCS#1 PEM),"appId","clientId"}).
const keyFileClients = (config.keyFileIntrospectors ?? []).map((k, i) => {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyId = `app-key-${i + 1}`;
  fs.writeFileSync(k.key_file, JSON.stringify({
    type: 'application',
    keyId,
    key: privateKey.export({ type: 'pkcs1', format: 'pem' }),
    appId: `app-${i + 1}`,
    clientId: k.client_id,
  }), { mode: 0o600 });
  return {
    client_id: k.client_id,
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'RS256',
    jwks: { keys: [{ ...publicKey.export({ format: 'jwk' }), kid: keyId, alg: 'RS256', use: 'sig' }] },
    grant_types: [],
    response_types: [],
    redirect_uris: [],
  };
});

const HS256_SECRET = crypto.randomBytes(32);

const isCodeClient = (c) => (c.grant_types ?? []).includes('authorization_code');
const codeClients = clients.filter(isCodeClient);

const providerClients = [
  ...clients.filter((c) => !isCodeClient(c)).map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  })),
  ...codeClients.map((c) => ({
    client_id: c.client_id,
    ...(c.client_secret ? { client_secret: c.client_secret } : {}),
    application_type: 'native',
    grant_types: c.grant_types,
    response_types: ['code'],
    redirect_uris: c.redirect_uris ?? [],
    token_endpoint_auth_method: c.token_endpoint_auth_method
      ?? (c.client_secret ? 'client_secret_basic' : 'none'),
  })),
  ...(config.introspectors ?? []).map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: [],
    response_types: [],
    redirect_uris: [],
  })),
  ...keyFileClients,
];

// Resource indicators must be URIs; Zitadel's own way of asking for a project audience is the
// scope `urn:zitadel:iam:org:project:id:{projectId}:aud`, so that URI yields `aud: projectId`.
const ZITADEL_AUD = /^urn:zitadel:iam:org:project:id:([^:]+):aud$/;

// An authorization-code client's resource: the Zitadel audience scope it asked for.
function defaultResource(ctx, client) {
  if (!codeClients.some((c) => c.client_id === client?.clientId)) return undefined;
  const scopes = String(ctx.oidc.params?.scope ?? '').split(' ');
  return scopes.find((s) => ZITADEL_AUD.test(s));
}

function resourceServer(client, resource) {
  const conf = byClientId.get(client?.clientId) ?? {};
  const alg = conf.alg ?? 'RS256';
  let sign;
  if (alg === 'HS256') {
    sign = { alg, key: HS256_SECRET };
  } else if (alg === 'RS256' || alg === 'PS256') {
    sign = { alg, kid: rsaKeys[rsaKeys.length - 1].kid };
  } else {
    sign = { alg };
  }
  return {
    scope: 'openid',
    audience: ZITADEL_AUD.exec(resource)?.[1] ?? resource,
    accessTokenTTL: conf.ttl ?? 600,
    accessTokenFormat: conf.format ?? 'jwt',
    jwt: { sign },
  };
}

function buildProvider(issuer) {
  const provider = new Provider(issuer, {
    clients: providerClients,
    // Newest RSA key first so it is also the default for anything not pinned to a kid.
    jwks: { keys: [...rsaKeys].reverse().concat([ecKey, edKey]) },
    features: {
      devInteractions: { enabled: codeClients.length > 0 },
      clientCredentials: { enabled: true },
      // Any confidential client may introspect (the verifier checks `aud` itself); a client
      // revokes only its own tokens.
      introspection: {
        enabled: true,
        allowedPolicy: (_ctx, client) => client.clientAuthMethod !== 'none',
      },
      revocation: {
        enabled: true,
        allowedPolicy: (_ctx, client, token) => token.clientId === client.clientId,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource, client) => resourceServer(client, resource),
      },
    },
    extraTokenClaims: (_ctx, token) => byClientId.get(token.clientId)?.claims,
    ttl: {
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 600,
    },
  });
  provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error:', err));
  return provider;
}

const stats = { jwks: 0, introspection: 0, token: 0 };
let failStatus = 0;
let handler;
let issuer;

const send = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

const server = http.createServer((req, res) => {
  const url = new URL(req.url, issuer);
  if (url.pathname === '/__rotate' && req.method === 'POST') {
    rsaKeys = [...rsaKeys, newRsaKey()];
    handler = buildProvider(issuer).callback();
    send(res, 200, { kid: rsaKeys[rsaKeys.length - 1].kid });
    return;
  }
  if (url.pathname === '/__clock' && req.method === 'POST') {
    clockOffsetMs = Number(url.searchParams.get('offset') ?? 0) * 1000;
    send(res, 200, { offset: clockOffsetMs / 1000 });
    return;
  }
  if (url.pathname === '/__forge' && req.method === 'POST') {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      const { header = {}, claims = {} } = JSON.parse(body || '{}');
      const key = rsaKeys[rsaKeys.length - 1];
      const now = Math.floor(Date.now() / 1000);
      const h = { alg: 'RS256', typ: 'at+jwt', kid: key.kid, ...header };
      const c = { iss: issuer, sub: 'forged-bot', iat: now, exp: now + 600, ...claims };
      const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const input = `${enc(h)}.${enc(c)}`;
      const signature = crypto.sign('sha256', Buffer.from(input),
        crypto.createPrivateKey({ key, format: 'jwk' }));
      send(res, 200, { token: `${input}.${signature.toString('base64url')}` });
    });
    return;
  }
  if (url.pathname === '/__stats') {
    send(res, 200, stats);
    return;
  }
  if (url.pathname === '/__fail' && req.method === 'POST') {
    failStatus = Number(url.searchParams.get('status') ?? 0);
    send(res, 200, { status: failStatus });
    return;
  }
  if (url.pathname === '/jwks') stats.jwks += 1;
  if (url.pathname === '/token/introspection') stats.introspection += 1;
  if (url.pathname === '/token') stats.token += 1;
  if (failStatus) {
    // Read the body first so the client gets the answer, not a reset connection.
    req.resume();
    req.on('end', () => send(res, failStatus, {
      error: 'server_error',
      error_description: 'the issuer is failing (test switch)',
    }));
    return;
  }
  handler(req, res);
});

server.listen(port, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  handler = buildProvider(issuer).callback();
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

// The test kills this process when done; also stop when its stdin-owning parent goes away.
process.on('SIGTERM', () => process.exit(0));
