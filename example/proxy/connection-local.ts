import type { WsOpenEvent } from '../../lib'

/**
 * What the edge knows of a WebSocket connection, from its `websocket:open` event: the local side it was
 * accepted on goes into the Via and Record-Route made towards it, and the Host it was opened with lets the
 * proxy recognise a Route that names it. In a cluster it is stored with the connection's bindings, so
 * another node can write the same Via and Record-Route.
 */
export interface ConnectionLocal {
  localAddress: string
  localPort: number
  /** The Host header of the upgrade request: a Route naming it names this proxy. */
  host?: string
  secure?: boolean
}

export function connectionLocal (event: WsOpenEvent): ConnectionLocal {
  return {
    localAddress: event.localAddress,
    localPort: event.localPort,
    host: event.request.headers.host,
    secure: event.request.protocol === 'https'
  }
}
