// Setting headers on a Fetch Response, shared by the adapters whose
// framework answers with one (Fetch handlers, Hono).

/**
 * withHeaders sets `headers` (`[name, value, ...]`) on `response` and returns
 * it, or a copy when its headers are immutable (a fetched Response). A
 * Response no constructor can copy (`Response.error()`, status 0, or a
 * 101 a runtime built for a WebSocket) is returned as it is: it is no HTTP
 * answer of this server's to put headers on.
 */
export function withHeaders(response: Response, headers: readonly string[]): Response {
  if (headers.length === 0) return response;
  let target = response;
  try {
    for (let i = 0; i < headers.length; i += 2) {
      target.headers.set(headers[i] as string, headers[i + 1] as string);
    }
  } catch {
    if (response.status < 200 || response.status > 599) return response;
    target = new Response(response.body, response);
    for (let i = 0; i < headers.length; i += 2) {
      target.headers.set(headers[i] as string, headers[i + 1] as string);
    }
  }
  return target;
}
