// panva's oidc-provider (the certified Node provider) configured like Hawiya's benchmark:
// one confidential client (client_secret_basic, ES256 or $ALG id_tokens, PKCE required),
// code flow, rotating refresh tokens, its development login and consent pages (which take
// any password: no password hashing), its in-memory adapter.
//
//   node provider.mjs <port> <redirect URI>
import Provider from 'oidc-provider';
import crypto from 'node:crypto';

const [port, redirect] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey: ec } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const { privateKey: rsa } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwks = { keys: [ { ...ec.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: 'es' }, { ...rsa.export({ format: 'jwk' }), alg: 'RS256', use: 'sig', kid: 'rs' } ] };
const provider = new Provider(issuer, {
  clients: [{
    client_id: 'civil-status', client_secret: 'bench-secret', redirect_uris: [redirect],
    grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic', id_token_signed_response_alg: process.env.ALG || 'ES256',
  }],
  jwks,
  pkce: { required: () => true },
  issueRefreshToken: async () => true,
  rotateRefreshToken: true,
  claims: { openid: ['sub'], profile: ['name', 'given_name', 'family_name', 'birthdate'] },
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id, name: 'Layla Haddad' }) }),
});
provider.listen(Number(port), () => console.log(`oidc-provider ${issuer}`));
