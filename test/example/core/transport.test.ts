import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import { once } from 'node:events'
import net from 'node:net'
import { after, before, describe, test } from 'node:test'
import { CoreTransport } from '../../../example/core/transport'
import type { SipPeer } from '../../../example/sip/address'
import { recordedLog } from '../../helpers/log'
import { until, within } from '../../helpers/pool'
import { reportedSetUp } from '../../helpers/set-up'

const OPTIONS = (n: number): string => `OPTIONS sip:edge SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK${n}\r\nCSeq: ${n} OPTIONS\r\nContent-Length: 0\r\n\r\n`

/** What the transport hands up, with a way to await the next one. */
function inbox (): { onMessage: (data: Buffer, source: SipPeer) => void, next: () => Promise<{ text: string, source: SipPeer }> } {
  const queue: Array<{ text: string, source: SipPeer }> = []
  const waiters: Array<(m: { text: string, source: SipPeer }) => void> = []
  return {
    onMessage: (data, source) => {
      const message = { text: data.toString(), source }
      const waiter = waiters.shift()
      if (waiter !== undefined) waiter(message)
      else queue.push(message)
    },
    next: async () => {
      const queued = queue.shift()
      if (queued !== undefined) return queued
      return await within(new Promise((resolve) => { waiters.push(resolve) }), 3000, () => 'a message from the transport')
    }
  }
}

describe('CoreTransport on real UDP and TCP sockets', () => {
  const { log, next: nextLog } = recordedLog()
  const received = inbox()
  let transport: CoreTransport

  before(reportedSetUp(async () => {
    transport = new CoreTransport({ listen: { transport: 'udp', host: '127.0.0.1', port: 0 }, log, onMessage: received.onMessage })
    await transport.start()
  }))
  after(async () => { await transport?.close() })

  test('port 0 picks one port free for both UDP and TCP', async () => {
    const { port } = transport.local
    assert.ok(port > 0)
    const tcp = net.connect(port, '127.0.0.1')
    await within(once(tcp, 'connect'), 3000, () => 'a TCP connection to the same port')
    tcp.destroy()
  })

  test('a datagram is handed up with its source; send answers over UDP', async () => {
    const peer = dgram.createSocket('udp4')
    peer.bind(0, '127.0.0.1')
    await once(peer, 'listening')
    try {
      peer.send(OPTIONS(1), transport.local.port, '127.0.0.1')
      const { text, source } = await received.next()
      assert.equal(text, OPTIONS(1))
      assert.deepEqual(source, { transport: 'udp', address: '127.0.0.1', port: peer.address().port })
      const answer = once(peer, 'message') as Promise<[Buffer]>
      transport.send(Buffer.from('SIP/2.0 200 OK\r\n\r\n'), source)
      assert.equal((await within(answer, 3000, () => 'the answer'))[0].toString(), 'SIP/2.0 200 OK\r\n\r\n')
    } finally {
      peer.close()
    }
  })

  test('a TCP stream is cut into messages, a ping gets its pong, and the answer goes back on that connection', async () => {
    const socket = net.connect(transport.local.port, '127.0.0.1')
    await once(socket, 'connect')
    try {
      const whole = OPTIONS(2) + '\r\n\r\n' + OPTIONS(3)
      const pong = once(socket, 'data') as Promise<[Buffer]>
      socket.write(whole.slice(0, 30))
      socket.write(whole.slice(30))
      const first = await received.next()
      assert.equal(first.text, OPTIONS(2))
      assert.deepEqual(first.source, { transport: 'tcp', address: '127.0.0.1', port: socket.localPort })
      assert.equal((await received.next()).text, OPTIONS(3))
      assert.equal((await within(pong, 3000, () => 'the pong'))[0].toString(), '\r\n')
      const answer = once(socket, 'data') as Promise<[Buffer]>
      transport.send(Buffer.from('SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n'), first.source)
      assert.equal((await within(answer, 3000, () => 'the answer on the same connection'))[0].toString(), 'SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n')
    } finally {
      socket.destroy()
    }
  })

  test('a stream that cannot be framed is closed, and the reason logged', async () => {
    const socket = net.connect(transport.local.port, '127.0.0.1')
    await once(socket, 'connect')
    const closed = once(socket, 'close')
    socket.write('OPTIONS sip:edge SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n')
    await within(closed, 3000, () => 'the transport to close the connection')
    assert.equal((await within(nextLog('sip core: TCP stream broken, connection closed'), 3000, () => 'the log line')).problem, 'no Content-Length on a stream')
  })

  test('to a TCP peer with no connection yet, one is opened, then used again', async () => {
    const accepted: net.Socket[] = []
    const data: string[] = []
    const server = net.createServer((socket) => {
      accepted.push(socket)
      socket.on('data', (chunk: Buffer) => { data.push(chunk.toString()) })
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const port = (server.address() as net.AddressInfo).port
    try {
      const target: SipPeer = { transport: 'tcp', address: '127.0.0.1', port }
      transport.send(Buffer.from(OPTIONS(4)), target)
      transport.send(Buffer.from(OPTIONS(5)), target)
      await until(() => data.join('') === OPTIONS(4) + OPTIONS(5), 3000, () => 'both messages at the peer', 10)
      assert.equal(accepted.length, 1, 'one connection for both')
      // The peer answers on it: the answer comes up as from that peer.
      accepted[0].write(OPTIONS(6))
      assert.deepEqual((await received.next()).source, target)
    } finally {
      for (const socket of accepted) socket.destroy()
      server.close()
    }
  })
})

test('close frees the port; a port in use fails start with EADDRINUSE', async () => {
  const { log } = recordedLog('warn')
  const first = new CoreTransport({ listen: { transport: 'udp', host: '127.0.0.1', port: 0 }, log, onMessage: () => {} })
  await first.start()
  const { port } = first.local
  const second = new CoreTransport({ listen: { transport: 'tcp', host: '127.0.0.1', port }, log, onMessage: () => {} })
  await assert.rejects(second.start(), { code: 'EADDRINUSE' })
  await first.close()
  await second.start()
  assert.equal(second.local.port, port)
  await second.close()
})
