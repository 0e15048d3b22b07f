// The demo's and the tests' authorization server: oidc-provider (a certified OpenID provider) on 127.0.0.1.
//
// Configured from one JSON argument (see examples/oauth_servers.py): the port, users alice and bob,
// dynamic client registration, PKCE required, resource indicators (RFC 8707) issuing JWT access
// tokens for the MCP resource, refresh tokens rotated on every use, a short access-token lifetime,
// Client ID Metadata Documents on request (fetched over https: give the test CA in NODE_EXTRA_CA_CERTS),
// opaque (introspectable) access tokens for the resources named in `opaque_resources`, signing keys
// from `jwks` when given (the provider's development key otherwise),
// and every provider event written as one JSON line to the event log (never a token's value).
import { appendFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const options = JSON.parse(process.argv[2]);
const issuer = `http://127.0.0.1:${options.port}`;
const users = new Set(options.users);

function record(event, fields) {
  appendFileSync(options.events, `${JSON.stringify({ event, at: Date.now() / 1000, ...fields })}\n`);
}

const opaque = new Set(options.opaque_resources ?? []);

const provider = new Provider(issuer, {
  clients: options.clients,
  ...(options.jwks ? { jwks: options.jwks } : {}),
  async findAccount(_ctx, id) {
    if (!users.has(id)) return undefined;
    return { accountId: id, async claims() { return { sub: id, name: id }; } };
  },
  scopes: ['openid', 'offline_access', ...options.scopes],
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    // Client ID Metadata Documents (an https URL as client_id; the document is fetched from it).
    clientIdMetadataDocument: { enabled: Boolean(options.client_id_metadata_document), ack: 'draft-02' },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => ({
        scope: options.scopes.join(' '),
        audience: resource,
        accessTokenTTL: options.access_token_ttl,
        accessTokenFormat: opaque.has(resource) ? 'opaque' : 'jwt',
      }),
    },
  },
  // The provider refuses to fetch documents from special-use addresses (its SSRF protection);
  // the tests serve them on 127.0.0.1, so its outgoing requests go without that check here.
  fetch: (url, fetchOptions) => globalThis.fetch(url, { ...fetchOptions, dispatcher: undefined }),
  pkce: { required: () => true },
  // A refresh token for every grant that allows one, rotated on every use (reuse revokes the grant).
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => true,
  ttl: {
    AccessToken: options.access_token_ttl,
    AuthorizationCode: 60,
    RefreshToken: 3600,
    Grant: 3600,
    Interaction: 600,
    Session: 3600,
    IdToken: 3600,
  },
});

const tokenEvents = ['access_token.issued', 'access_token.saved', 'refresh_token.saved', 'refresh_token.consumed',
  'authorization_code.saved', 'authorization_code.consumed'];
for (const name of tokenEvents) {
  provider.on(name, (token) => record(name, {
    account: token.accountId ?? null, client: token.clientId ?? null, grant: token.grantId ?? null,
  }));
}
provider.on('grant.success', (ctx) => record('grant.success', {
  account: ctx.oidc.account?.accountId ?? ctx.oidc.entities?.RefreshToken?.accountId ?? null,
  client: ctx.oidc.client?.clientId ?? null,
  grant_type: ctx.oidc.params?.grant_type ?? null,
}));
provider.on('grant.revoked', (_ctx, grantId) => record('grant.revoked', { grant: grantId }));
for (const name of ['grant.error', 'authorization.error', 'registration_create.error']) {
  provider.on(name, (_ctx, error) => record(name, {
    error: error.error ?? String(error), description: error.error_description ?? null,
    detail: error.error_detail ?? (error.cause ? String(error.cause) : null),
  }));
}
provider.on('registration_create.success', (_ctx, client) => record('registration_create.success', {
  client: client.clientId,
}));
provider.on('authorization.success', (ctx) => record('authorization.success', {
  client: ctx.oidc.client?.clientId ?? null,
}));
provider.on('server_error', (_ctx, error) => record('server_error', { error: String(error) }));

const server = provider.listen(options.port, '127.0.0.1', () => {
  process.stdout.write(`oidc-provider listening on ${issuer}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
