// The REST API as the console uses it: every call carries the bearer token; a refusal
// becomes an ApiError with the server's own message, so the page can show it as it is.

const TOKEN_KEY = "ferrofab.token";

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }

  // What the operator reads: the server's sentence, the field it blames, the status.
  describe() {
    const field = this.field ? ` (field ${this.field})` : "";
    return `${this.message}${field} [HTTP ${this.status}${this.code ? " " + this.code : ""}]`;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) {
    sessionStorage.setItem(TOKEN_KEY, value);
  } else {
    sessionStorage.removeItem(TOKEN_KEY);
  }
}

// Called when the server says the token is not (or no longer) valid.
let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

async function errorOf(response) {
  let code = "";
  let message = `${response.status} ${response.statusText}`;
  let field;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || "";
      message = body.error.message || message;
      field = body.error.field || undefined;
    }
  } catch (_) {
    // Not JSON: keep the status line.
  }
  return new ApiError(response.status, code, message, field);
}

// `method path` with an optional JSON body; resolves to the parsed JSON answer.
export async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) {
    headers.Authorization = `Bearer ${t}`;
  }
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "unreachable", `the box did not answer: ${e.message}`);
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401) {
      onUnauthorized(error);
    }
    throw error;
  }
  if (response.status === 204) {
    return null;
  }
  return response.json();
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);
export const put = (path, body) => call("PUT", path, body);
export const patch = (path, body) => call("PATCH", path, body);
export const del = (path) => call("DELETE", path);

// A path segment (NQNs keep their ':', as the server writes them).
export function seg(text) {
  return encodeURIComponent(text).replace(/%3A/gi, ":");
}

// Server-sent events over fetch (EventSource cannot send an Authorization header): calls
// `onEvent(name, data)` per event until `signal` aborts; rejects when the stream fails.
export async function stream(path, onEvent, signal) {
  const response = await fetch(path, {
    headers: { Accept: "text/event-stream", Authorization: `Bearer ${token()}` },
    cache: "no-store",
    signal,
  });
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401) {
      onUnauthorized(error);
    }
    throw error;
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      throw new ApiError(0, "stream_ended", "the live statistics stream ended");
    }
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) {
          name = line.slice(6).trim();
        } else if (line.startsWith("data:")) {
          data.push(line.slice(5).replace(/^ /, ""));
        }
      }
      if (data.length) {
        onEvent(name, data.join("\n"));
      }
    }
  }
}
