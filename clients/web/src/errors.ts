// What a failed call means to the person at the page: the edge and the service refuse for
// different reasons (bad token, rate limit, overload), and each needs a different next step.
import { Code, ConnectError } from "@connectrpc/connect";

export type Failure = "auth" | "rate-limit" | "overload" | "unavailable" | "stopped" | "other";

export interface Explained {
  failure: Failure;
  message: string;
}

/** Envoy's rate-limit refusal: RESOURCE_EXHAUSTED from local_ratelimit, or a bare HTTP 429. */
function isRateLimit(error: ConnectError): boolean {
  const remaining = error.metadata.get("x-ratelimit-remaining");
  return (
    /local_rate_limited|HTTP 429|rate limit/i.test(error.rawMessage) ||
    (remaining !== null && Number(remaining) === 0)
  );
}

export function explain(error: unknown): Explained {
  const e = ConnectError.from(error);
  if (e.code === Code.Canceled) {
    return { failure: "stopped", message: "Stopped." };
  }
  if (e.code === Code.Unauthenticated || e.code === Code.PermissionDenied) {
    return {
      failure: "auth",
      message:
        "Not authorized: the token is missing, expired or not valid for this edge. " +
        "Mint one with `seseragi token --sub you` and paste it in the Token field.",
    };
  }
  if (isRateLimit(e)) {
    return {
      failure: "rate-limit",
      message: "Rate limited: you sent too many requests this minute. Wait a moment and retry.",
    };
  }
  if (e.code === Code.ResourceExhausted) {
    return {
      failure: "overload",
      message: `The service is busy (${e.rawMessage}). Retry in a few seconds.`,
    };
  }
  if (e.code === Code.Unavailable) {
    return {
      failure: "unavailable",
      message: `The service is unavailable (loading, draining or unreachable): ${e.rawMessage}`,
    };
  }
  return { failure: "other", message: `${Code[e.code]}: ${e.rawMessage}` };
}
