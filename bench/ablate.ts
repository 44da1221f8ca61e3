/**
 * Switches parts of this plugin's message path off inside a bench target, to measure what each costs
 * (bench/costs.ts). Only a bench target ever loads this: it replaces methods on the plugin's own classes
 * in that process, so the plugin is measured as shipped with each part taken out, never rebuilt.
 *
 *   BENCH_OFF=used        the last-used list move on every frame in and out (Registry#touch)
 *   BENCH_OFF=keepalive   the keepalive list move on every frame in (Keepalive#heard)
 *   BENCH_OFF=stats       the frame counters (Stats#received, Stats#transmitted)
 *   BENCH_OFF=clock       the clock read per message (Date.now() returns a constant)
 *   BENCH_OFF=telemetry   the message and byte counters each way (Stats#messageReceived, #messageSent) and
 *                         the diagnostics channel's hasSubscribers getter (a plain false field instead)
 *   BENCH_OFF=send        wsSend's own work: the payload check, the writable and buffered-amount checks
 *                         (the write itself, and the registry lookup, stay; `used`, `stats` and `telemetry`
 *                         go with it, as they are counted there)
 *   BENCH_OFF=dispatch    the hook dispatcher's work: the message's first hook is called directly, with no
 *                         queue check, no hook timer check and no look at what it returned
 *   BENCH_OFF=used,keepalive,stats,clock,telemetry,send,dispatch   all of them
 *
 * What they leave wrong (wsDump's order, keepalive probes, statistics) does not matter to a round-trip
 * bench, which never asks.
 */
import { Keepalive } from '../lib/connection/keepalive'
import { Registry } from '../lib/connection/registry'
import { Stats } from '../lib/connection/stats'
import { messageChannel } from '../lib/observe/channels'
import { HookDispatcher } from '../lib/connection/hook-queue'
import type { Connection } from '../lib/connection/connection'
import { WsServer } from '../lib/server'
import type { TargetKind } from './target'

export const PARTS = ['used', 'keepalive', 'stats', 'clock', 'telemetry', 'send', 'dispatch'] as const
export type Part = typeof PARTS[number]

/** Parses BENCH_OFF; throws on a name it does not know, so a typo cannot measure nothing. */
export function partsOff (value: string | undefined): Part[] {
  if (value === undefined || value === '') return []
  return value.split(',').map((name) => {
    if (!(PARTS as readonly string[]).includes(name)) throw new Error(`BENCH_OFF: unknown part "${name}" (known: ${PARTS.join(', ')})`)
    return name as Part
  })
}

export function switchOff (parts: readonly Part[]): void {
  const noop = (): void => {}
  for (const part of parts) {
    if (part === 'used') Registry.prototype.touch = noop
    if (part === 'keepalive') Keepalive.prototype.heard = noop
    if (part === 'stats') { Stats.prototype.received = noop; Stats.prototype.transmitted = noop }
    if (part === 'telemetry') {
      Stats.prototype.messageReceived = noop
      Stats.prototype.messageSent = noop
      Object.defineProperty(messageChannel, 'hasSubscribers', { value: false })
    }
    if (part === 'send') {
      WsServer.prototype.send = function (this: WsServer, id: number, data: string | Uint8Array): boolean {
        const conn = (this as unknown as { registry: { get: (id: number) => Connection | undefined } }).registry.get(id)
        conn?.socket?.send(data)
        return conn !== undefined
      }
    }
    if (part === 'dispatch') {
      HookDispatcher.prototype.dispatch = function (this: HookDispatcher<Connection>, _conn, name, event): void {
        const hook = (this as unknown as { hooks: { events: (n: string) => Array<{ fn: (e: unknown) => unknown, instance: unknown }> } }).hooks.events(name)[0]
        hook?.fn.call(hook.instance, event)
      }
    }
    if (part === 'clock') {
      const then = Date.now()
      Date.now = () => then
    }
  }
}

/**
 * A bench target by name: a kind of bench/target.ts, a copy of one (`C-copy`), ws without bufferutil
 * (`A-js`), raw ws beside an idle A or B in one process (`C-beside-A`, `C-beside-B`), or A or A-async with parts off
 * (`A-no-used`, `A-no-used+stats`, `A-async-no-all`).
 */
export function targetOf (name: string): { kind: TargetKind, env: Record<string, string> } {
  const off = /^(A|A-async)-no-(.+)$/.exec(name)
  if (off !== null) {
    const parts = off[2] === 'all' ? [...PARTS] : partsOff(off[2].split('+').join(','))
    return { kind: off[1] as TargetKind, env: { BENCH_OFF: parts.join(',') } }
  }
  if (name === 'A-js') return { kind: 'A', env: { WS_NO_BUFFER_UTIL: '1' } }
  // Raw ws in a process that also holds an idle A (or B): the cost of the process around a message path.
  const beside = /^C-beside-(A|B)$/.exec(name)
  if (beside !== null) return { kind: 'C', env: { BENCH_BESIDE: beside[1] } }
  return { kind: name.replace(/-copy$/, '') as TargetKind, env: {} }
}
