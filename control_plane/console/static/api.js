// The console's only way to act: the public REST API on this origin. The session cookie
// authenticates each call; writes carry the session's CSRF value, kept in memory only.

let csrf = "";
let onSignedOut = () => {};

export function setCsrf(value) {
  csrf = value;
}

export function whenSignedOut(callback) {
  onSignedOut = callback;
}

export class ApiError extends Error {
  constructor(status, message, violations) {
    super(message);
    this.status = status;
    this.violations = violations; // [{field, description}]
  }
}

// `asOperator`: while an operator session works in an account, this call uses the operator
// token instead of the account's key (accounts, proxies, admin API keys).
export async function api(method, path, body, { asOperator = false } = {}) {
  const headers = { Accept: "application/json" };
  if (asOperator) headers["X-Keyway-As"] = "operator";
  if (method !== "GET") headers["X-Keyway-CSRF"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  if (response.status === 204) return {};
  const text = await response.text();
  let data = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError(response.status, `unexpected answer (HTTP ${response.status})`, []);
  }
  if (!response.ok) {
    const error = data.error || {};
    const violations = [];
    for (const detail of error.details || []) {
      for (const v of detail.fieldViolations || []) violations.push(v);
    }
    if (response.status === 401 && !path.startsWith("/console/session")) onSignedOut();
    throw new ApiError(response.status, error.message || `HTTP ${response.status}`, violations);
  }
  return data;
}

// Every page of a list, followed by its next page token.
export async function listAll(path, key, options = {}) {
  const found = [];
  let token = "";
  for (let page = 0; page < 50; page += 1) {
    const sep = path.includes("?") ? "&" : "?";
    const data = await api("GET", `${path}${sep}pageSize=100${token ? `&pageToken=${encodeURIComponent(token)}` : ""}`, undefined, options);
    found.push(...(data[key] || []));
    token = data.nextPageToken || "";
    if (!token) break;
  }
  return found;
}
