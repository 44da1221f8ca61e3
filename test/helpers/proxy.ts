import { once } from 'node:events'
import net from 'node:net'

export interface Forwarder {
  port: number
  close: () => Promise<void>
}

export interface ForwarderOptions {
  /** The proxy's own address towards the app, so the app can tell it from the clients (127.0.0.3, ...). */
  fromAddress: string
  /** X-Forwarded-Proto: what the client spoke to the proxy (TLS ends at the proxy). */
  proto: 'http' | 'https'
}

// A request head larger than this is not a handshake this proxy relays.
const MAX_HEAD = 16 * 1024

/**
 * A load balancer in miniature, on 127.0.0.1: for each client it opens its own connection to the app from
 * `fromAddress`, adds X-Forwarded-For (the client's address, as the socket shows it) and X-Forwarded-Proto
 * to the first request head, then relays bytes both ways untouched: the 101 and every frame after it.
 */
export async function startForwarder (targetPort: number, { fromAddress, proto }: ForwarderOptions): Promise<Forwarder> {
  const sockets = new Set<net.Socket>()
  const track = (socket: net.Socket): void => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => { socket.destroy() })
  }
  const server = net.createServer((client) => {
    track(client)
    let head = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end === -1) {
        if (head.length > MAX_HEAD) client.destroy()
        return
      }
      client.off('data', onData)
      client.pause()
      const lineEnd = head.indexOf('\r\n')
      const added = `\r\nX-Forwarded-For: ${client.remoteAddress ?? ''}\r\nX-Forwarded-Proto: ${proto}`
      const forwarded = Buffer.concat([head.subarray(0, lineEnd), Buffer.from(added), head.subarray(lineEnd)])
      const upstream = net.connect({ host: '127.0.0.1', port: targetPort, localAddress: fromAddress }, () => {
        upstream.write(forwarded)
        client.pipe(upstream)
        upstream.pipe(client)
        client.resume()
      })
      track(upstream)
      upstream.on('close', () => client.destroy())
      client.on('close', () => upstream.destroy())
    }
    client.on('data', onData)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address() as net.AddressInfo
  return {
    port: address.port,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      server.close()
      await once(server, 'close')
    }
  }
}
