// Verifies auth_service's access tokens knowing only the JWKS URL, issuer and audience,
// with jose (https://github.com/panva/jose): JWKS_URL=... ISSUER=... AUDIENCE=api
// node verify.mjs < tokens. One token per line in, one JSON line per token out:
// {"valid":true,"sub":...,"sid":...} or {"valid":false,"code":...}.
import { createInterface } from "node:readline";
import { createRemoteJWKSet, jwtVerify } from "jose";

const { JWKS_URL, ISSUER, AUDIENCE = "api" } = process.env;
// Kept for the JWKS's max-age (JWKS_MAX_AGE seconds); a kid it lacks (a rotation)
// fetches it again.
const jwks = createRemoteJWKSet(new URL(JWKS_URL), {
  cacheMaxAge: Number(process.env.JWKS_MAX_AGE ?? 300) * 1000,
});

async function verifyAccessToken(token) {
  const { payload } = await jwtVerify(token, jwks, {
    issuer: ISSUER,
    audience: AUDIENCE,
    // RFC 9068: an access token's header says so; a refresh token's does not.
    typ: "at+jwt",
    // The algorithms auth_service signs with asymmetric keys, never HS256.
    algorithms: ["ES256", "EdDSA", "RS256"],
    requiredClaims: ["exp", "iat", "iss", "aud", "sub", "jti", "client_id"],
  });
  return payload;
}

for await (const line of createInterface({ input: process.stdin })) {
  const token = line.trim();
  if (!token) continue;
  try {
    const claims = await verifyAccessToken(token);
    console.log(JSON.stringify({ valid: true, sub: claims.sub, sid: claims.sid }));
  } catch (error) {
    console.log(JSON.stringify({ valid: false, code: error.code ?? error.name }));
  }
}
