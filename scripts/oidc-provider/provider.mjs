// panva's oidc-provider (the certified Node provider) configured like Hawiya's benchmark:
// two confidential clients (client_secret_basic, PKCE required), `civil-status` with ES256
// and `civil-status-rs256` with RS256 id_tokens; code flow, rotating refresh tokens, its development login and consent pages (which take
// any password: no password hashing), and its in-memory adapter on a store that does not
// evict (its default store is an LRU of 1,000 entries, which drops live codes and grants
// under load; Hawiya keeps every grant until it expires).
//
//   node provider.mjs <port> <redirect URI>
import Provider from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';
import crypto from 'node:crypto';

const [port, redirect] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey: ec } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const { privateKey: rsa } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwks = { keys: [ { ...ec.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: 'es' }, { ...rsa.export({ format: 'jwk' }), alg: 'RS256', use: 'sig', kid: 'rs' } ] };
const storage = new LRU({ maxSize: Number.MAX_SAFE_INTEGER });
const provider = new Provider(issuer, {
  clients: [['civil-status', 'ES256'], ['civil-status-rs256', 'RS256']].map(([client_id, alg]) => ({
    client_id, client_secret: 'bench-secret', redirect_uris: [redirect],
    grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic', id_token_signed_response_alg: alg,
  })),
  jwks,
  adapter: (model) => new MemoryAdapter(model, storage),
  pkce: { required: () => true },
  issueRefreshToken: async () => true,
  rotateRefreshToken: true,
  claims: { openid: ['sub'], profile: ['name', 'given_name', 'family_name', 'birthdate'] },
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id, name: 'Layla Haddad' }) }),
});
provider.listen(Number(port), () => console.log(`oidc-provider ${issuer}`));
