/**
 * A JSON-RPC 2.0 call over HTTP (POST /RPC on 127.0.0.1:`port`), as Kamailio's jsonrpcs module and this
 * plugin's `rpc` serve it; resolves with the result, throws with the error's message.
 */
export async function jsonRpc<T = unknown> (port: number, method: string, params: unknown[] = []): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${port}/RPC`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    signal: AbortSignal.timeout(5000)
  })
  const body = await res.json() as { result?: T, error?: { message: string } }
  if (body.error !== undefined || body.result === undefined) throw new Error(`${method}: ${body.error?.message ?? 'no result'}`)
  return body.result
}
