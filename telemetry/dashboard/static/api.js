// Talking to the dashboard's server: JSON requests and server-sent event streams.
const token = new URLSearchParams(location.search).get("token");

export function withToken(path) {
  if (!token) return path;
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

export async function getJSON(path) {
  const response = await fetch(withToken(path));
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    // A reply that is not ours (a proxy's page, Starlette's plain 404): say what came back.
    body = { error: `${response.status} ${text.slice(0, 200)}` };
  }
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// A run id is a folder path: encode each part, keep the slashes.
export function runPath(id) {
  return id.split("/").map(encodeURIComponent).join("/");
}

// An EventSource whose messages arrive parsed; the caller closes it when its view goes.
export function stream(path, onMessage) {
  const source = new EventSource(withToken(path));
  source.onmessage = (event) => onMessage(JSON.parse(event.data));
  return source;
}

// Log numbers: the log spells non-finite values as strings; charts want null (a gap).
export function num(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}
