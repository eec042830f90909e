// A browser or Node client of auth_service, written against the types openapi-typescript
// generates from /openapi.json (test_typescript_client.py generates them into api.d.ts
// and runs tsc on this file): a change to the document that breaks this code fails CI.
import createClient from "openapi-fetch";
import type { components, operations, paths } from "./api";

type TokenPair = components["schemas"]["TokenPair"];
type ApiError = components["schemas"]["Error"];
// Operations by their operationId: the names client generators give their methods.
type LoginBody = operations["login"]["requestBody"]["content"]["application/json"];
type RefreshAnswer =
  operations["refreshTokens"]["responses"][200]["content"]["application/json"];
type Me = operations["getMe"]["responses"][200]["content"]["application/json"];
type TooManyRequests =
  operations["login"]["responses"][429]["content"]["application/json"];
type RetryAfter = operations["login"]["responses"][429]["headers"]["Retry-After"];

const api = createClient<paths>({ baseUrl: "http://127.0.0.1:8000", credentials: "include" });

function describe(error: ApiError | TooManyRequests): string {
  return `${error.code ?? "?"} ${error.error ?? ""}: ${error.message ?? ""}`;
}

export async function signUpAndLogIn(email: string, password: string): Promise<TokenPair> {
  const signup = await api.POST("/auth/signup", {
    body: { email, username: "example", password, full_name: "Example User" },
  });
  if (signup.error) throw new Error(describe(signup.error));
  const login: LoginBody = { email, password };
  const { data, error, response } = await api.POST("/auth/login", { body: login });
  if (response.status === 429) {
    const wait: RetryAfter = Number(response.headers.get("Retry-After"));
    throw new Error(`try again in ${wait} s`);
  }
  if (error) throw new Error(describe(error));
  // With two-step verification on, the login's first step earns an mfa token, not a pair.
  if ("mfa_token" in data) {
    throw new Error(`POST /auth/login/mfa with a code (${data.methods.join(" or ")})`);
  }
  return data;
}

export async function whoAmI(tokens: TokenPair): Promise<Me> {
  const { data, error } = await api.GET("/users/me", {
    headers: { Authorization: `Bearer ${tokens.access_token}` },
  });
  if (error) throw new Error(describe(error));
  const id: number | undefined = data.id;
  const name: string | undefined = data.username;
  // A boolean; when it happened is email_verified_at (an ISO 8601 time, or null).
  const verified: boolean | undefined = data.email_verified;
  const verifiedAt: string | null | undefined = data.email_verified_at;
  console.log(id, name, verified ? `verified ${verifiedAt}` : "unverified");
  return data;
}

export async function refresh(tokens: TokenPair): Promise<RefreshAnswer> {
  const { data, error } = await api.POST("/auth/refresh", {
    body: { refresh_token: tokens.refresh_token },
  });
  if (error) throw new Error(describe(error));
  const next: string = data.access_token;
  console.log(next.length, data.expires_in);
  return data;
}

export async function serverVersion(): Promise<string | undefined> {
  const { data } = await api.GET("/healthz");
  return data?.version;
}

export async function logOut(tokens: TokenPair): Promise<void> {
  const { error } = await api.POST("/auth/logout", {
    headers: { Authorization: `Bearer ${tokens.access_token}` },
    body: { refresh_token: tokens.refresh_token },
  });
  if (error) throw new Error(describe(error));
}
