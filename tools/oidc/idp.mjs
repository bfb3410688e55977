// Local OAuth2/OIDC provider for kmgate integration tests (oidc-provider 9.13.3).
//
//   npm ci --prefix tools/oidc
//   PORT=3000 ACCESS_TOKEN_TTL=300 node tools/oidc/idp.mjs
//
// Binds 127.0.0.1 only. Prints "listening <issuer>" on stdout once ready.
// Resources (RFC 8707 resource indicators):
//   https://api.example.test    ES256 JWT access tokens (typ at+jwt)
//   https://rs256.example.test  RS256 JWT access tokens (typ at+jwt)
//   urn:example:opaque          opaque access tokens (introspectable)
// Clients:
//   gateway / gateway-secret    introspection/revocation only (no grants)
//   cc-client / cc-secret       client_credentials, scope "read write"
// Registration: POST <issuer>/reg with "Authorization: Bearer $REGISTRATION_IAT"
//   (default dev-initial-access-token); RFC 7592 delete is enabled.
// DPoP is enabled: send a DPoP proof to /token for a DPoP-bound token.
import Provider, { errors } from 'oidc-provider'; // errors is a named export (Provider.errors is undefined)
import { generateKeyPairSync } from 'node:crypto';

const HOST = '127.0.0.1';
const PORT = Number(process.env.PORT || 3000);
const ISSUER = `http://${HOST}:${PORT}`;
const TTL = Number(process.env.ACCESS_TOKEN_TTL || 300);
if (!Number.isInteger(TTL) || TTL <= 0) {
  console.error(`invalid ACCESS_TOKEN_TTL: ${process.env.ACCESS_TOKEN_TTL}`);
  process.exit(2);
}

const JWT_RS = 'https://api.example.test';
const RS256_RS = 'https://rs256.example.test';
const OPAQUE_RS = 'urn:example:opaque';

// Fresh signing keys on every start (private JWKs; the provider publishes the public parts at /jwks).
const ecKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
const rsaKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

// Dynamic client registration (RFC 7591) and its management (RFC 7592),
// for the gateway's developer keys: POST /reg needs the initial access
// token REGISTRATION_IAT (Bearer); registered clients are deleted with their
// registration_access_token at registration_client_uri.
const REGISTRATION_IAT = process.env.REGISTRATION_IAT || 'dev-initial-access-token';
const registrationFeatures = {
  registration: { enabled: true, initialAccessToken: REGISTRATION_IAT },
  registrationManagement: { enabled: true, rotateRegistrationAccessToken: false },
};

const provider = new Provider(ISSUER, {
  jwks: {
    keys: [
      { ...ecKey, alg: 'ES256', use: 'sig', kid: 'es256-1' },
      { ...rsaKey, alg: 'RS256', use: 'sig', kid: 'rs256-1' },
    ],
  },
  scopes: ['openid', 'read', 'write'],
  ttl: { ClientCredentials: TTL },
  clients: [
    { client_id: 'gateway', client_secret: 'gateway-secret', grant_types: [], response_types: [], redirect_uris: [] },
    {
      client_id: 'cc-client', client_secret: 'cc-secret', grant_types: ['client_credentials'],
      response_types: [], redirect_uris: [], scope: 'read write',
    },
  ],
  features: {
    ...registrationFeatures,
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true, allowedPolicy: () => true }, // any authenticated client may introspect (tests)
    revocation: { enabled: true, allowedPolicy: () => true },
    // DPoP (RFC 9449): a client_credentials request with a DPoP proof gets a
    // DPoP-bound token (cnf.jkt); without a proof, a bearer token.
    dPoP: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => JWT_RS, // used when no resource= is sent
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        if (resource === JWT_RS) {
          return {
            scope: 'read write', audience: JWT_RS, accessTokenTTL: TTL,
            accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } },
          };
        }
        if (resource === RS256_RS) {
          return {
            scope: 'read write', audience: RS256_RS, accessTokenTTL: TTL,
            accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } },
          };
        }
        if (resource === OPAQUE_RS) {
          return {
            scope: 'read write', audience: OPAQUE_RS, accessTokenTTL: TTL,
            accessTokenFormat: 'opaque',
          };
        }
        throw new errors.InvalidTarget();
      },
    },
  },
});

const server = provider.listen(PORT, HOST, () => console.log(`listening ${ISSUER}`));
server.on('error', (err) => {
  console.error(`listen ${HOST}:${PORT}: ${err.message}`);
  process.exit(1);
});
for (const s of ['SIGTERM', 'SIGINT']) {
  process.on(s, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
