import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ownedChild } from './children'
import { freePort } from './lwsc'
import { within } from './pool'
import { installCommand } from './system-packages'

export const BARESIP = '/usr/bin/baresip'
export const BARESIP_HINT = `${BARESIP} is missing: ${installCommand(['baresip-core'])}`

/** An event baresip reports on its control socket (ctrl_tcp: `{"event":true,"class":"call","type":"CALL_ESTABLISHED",...}`). */
export interface BaresipEvent {
  class: string
  type: string
  param?: string
  peeruri?: string
  direction?: string
  id?: string
}

export interface SoftphoneOptions {
  /** The user part of its address-of-record at the core. */
  user: string
  /** `host:port` of the registrar (the core), over UDP. */
  registrar: string
  /** `auto` answers every call at once; `manual` rings until told `accept`. */
  answer?: 'auto' | 'manual'
}

export interface Softphone {
  pid: number
  /** Its address-of-record, `sip:user@registrar`. */
  aor: string
  /** Runs a command of its menu module (`dial`, `hangup`, `hold`, `resume`, `accept`): its answer. */
  command: (name: string, params?: string) => Promise<{ ok: boolean, data: string }>
  /**
   * The next event of `type` not yet taken, and that `accept` accepts (reported already, or to come within
   * 10 s): `CALL_REMOTE_SDP` with param `answer` says the other end answered its re-INVITE's offer.
   */
  event: (type: string, accept?: (event: BaresipEvent) => boolean) => Promise<BaresipEvent>
  /**
   * Drops the events of `type` reported so far and not taken, so the next `event(type)` is one reported
   * from now on: the initial INVITE's answer is a `CALL_REMOTE_SDP` too, and must not pass for a re-INVITE's.
   */
  forget: (type: string) => void
  /** What it printed with its SIP trace, for failure messages. */
  output: () => string
  stop: () => Promise<void>
}

/**
 * A real softphone, Debian's baresip, run headless: no audio device (a 440 Hz sine as the microphone,
 * /dev/null as the speaker), WebRTC's media stack (ICE, DTLS-SRTP, rtcp-mux, Opus) so a browser's offer
 * is one it can answer, SIP over UDP on 127.0.0.1, registered at `registrar`. It is driven, and heard
 * from, over its ctrl_tcp socket (netstring-framed JSON). Resolves once it is registered; stopped by pid.
 *
 * baresip's ICE leaves loopback addresses out of its candidates, so its media (and the other end's)
 * goes over this machine's own interface addresses: it never leaves the machine.
 */
export async function startBaresip (options: SoftphoneOptions): Promise<Softphone> {
  const dir = await mkdtemp(join(tmpdir(), 'baresip-'))
  const ctrlPort = await freePort('tcp')
  await writeFile(join(dir, 'config'), [
    'poll_method epoll', 'sip_listen 127.0.0.1:0', 'net_interface 127.0.0.1', 'call_local_timeout 120', 'call_max_calls 4',
    'audio_player aufile,/dev/null', 'audio_source ausine,440', 'audio_alert aufile,/dev/null', 'rtcp_mux yes',
    'module_path /usr/lib/baresip/modules',
    'module g711.so', 'module opus.so', 'module ausine.so', 'module aufile.so', 'module ice.so', 'module dtls_srtp.so',
    'module_app account.so', 'module_app menu.so', 'module_app ctrl_tcp.so', `ctrl_tcp_listen 127.0.0.1:${ctrlPort}`
  ].join('\n') + '\n')
  const aor = `sip:${options.user}@${options.registrar}`
  // The registrar is its outbound proxy too: every request it makes goes through the core.
  await writeFile(join(dir, 'accounts'), `<${aor};transport=udp>;outbound="sip:${options.registrar};transport=udp";regint=600;answermode=${options.answer ?? 'auto'};mediaenc=dtls_srtp;medianat=ice\n`)
  let output = ''
  const child: ChildProcess = ownedChild(spawn(BARESIP, ['-f', dir, '-s'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }))
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve() }) })
  const tail = (): string => output.slice(-6000)
  const stop = async (): Promise<void> => {
    control?.destroy()
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const killer = setTimeout(() => { child.kill('SIGKILL') }, 3000)
      await exited
      clearTimeout(killer)
    }
    await rm(dir, { recursive: true, force: true })
  }
  let control: Control | undefined
  try {
    control = await Control.connect(ctrlPort, () => child.exitCode !== null, tail)
    // It may have registered before the control socket was up: its registration status says. Bounded:
    // 100 looks, 50 ms apart.
    for (let i = 0; ; i++) {
      const status = await control.command('reginfo')
      // The status is coloured: ANSI escapes around `OK`.
      if (/\sOK\s/.test(status.data.replace(/\u001b\[[0-9;]*m/g, ''))) break
      if (i === 100) throw new Error(`baresip did not register at ${options.registrar}:\n${status.data}\n${tail()}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  } catch (err) {
    await stop()
    throw err
  }
  const ctrl = control
  return { pid: child.pid ?? 0, aor, command: ctrl.command.bind(ctrl), event: ctrl.event.bind(ctrl), forget: ctrl.forget.bind(ctrl), output: tail, stop }
}

/** baresip's ctrl_tcp socket: commands out, their answers and the events in, each a netstring of JSON. */
class Control {
  private buffer = Buffer.alloc(0)
  private readonly events: BaresipEvent[] = []
  private readonly eventWaiters: Array<{ matches: (e: BaresipEvent) => boolean, resolve: (e: BaresipEvent) => void }> = []
  private readonly answers = new Map<string, (answer: { ok: boolean, data: string }) => void>()
  private token = 0

  private constructor (private readonly socket: net.Socket, private readonly output: () => string) {
    socket.on('data', (chunk: Buffer) => { this.read(chunk) })
    socket.on('error', () => {})
  }

  /** Connects once baresip listens (bounded: 100 tries, 50 ms apart). */
  static async connect (port: number, exited: () => boolean, output: () => string): Promise<Control> {
    for (let i = 0; i < 100; i++) {
      if (exited()) throw new Error(`baresip exited during start-up:\n${output()}`)
      const socket = await new Promise<net.Socket | null>((resolve) => {
        const s = net.connect(port, '127.0.0.1')
        s.once('connect', () => { resolve(s) })
        s.once('error', () => { s.destroy(); resolve(null) })
      })
      if (socket !== null) return new Control(socket, output)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    throw new Error(`baresip's ctrl_tcp did not listen on 127.0.0.1:${port}:\n${output()}`)
  }

  async command (name: string, params = ''): Promise<{ ok: boolean, data: string }> {
    const token = String(++this.token)
    const json = Buffer.from(JSON.stringify({ command: name, params, token }))
    const answered = new Promise<{ ok: boolean, data: string }>((resolve) => { this.answers.set(token, resolve) })
    this.socket.write(Buffer.concat([Buffer.from(`${json.length}:`), json, Buffer.from(',')]))
    return await within(answered, 5000, () => `baresip's answer to ${name} ${params}:\n${this.output()}`)
  }

  async event (type: string, accept: (event: BaresipEvent) => boolean = () => true): Promise<BaresipEvent> {
    const matches = (e: BaresipEvent): boolean => e.type === type && accept(e)
    const index = this.events.findIndex(matches)
    if (index !== -1) return this.events.splice(index, 1)[0]
    return await within(new Promise<BaresipEvent>((resolve) => { this.eventWaiters.push({ matches, resolve }) }), 10_000, () => `baresip's ${type}:\n${this.output()}`)
  }

  forget (type: string): void {
    for (let i = this.events.length - 1; i >= 0; i--) if (this.events[i].type === type) this.events.splice(i, 1)
  }

  destroy (): void {
    this.socket.destroy()
  }

  /** Netstrings: `<length>:<bytes>,`, one JSON object each. */
  private read (chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk])
    for (;;) {
      const colon = this.buffer.indexOf(':')
      if (colon === -1) return
      const length = Number(this.buffer.subarray(0, colon).toString())
      if (this.buffer.length < colon + 1 + length + 1) return
      const message = JSON.parse(this.buffer.subarray(colon + 1, colon + 1 + length).toString()) as Record<string, unknown>
      this.buffer = this.buffer.subarray(colon + 1 + length + 1)
      if (message.response === true) this.answers.get(String(message.token))?.({ ok: message.ok === true, data: String(message.data ?? '') })
      else if (message.event !== undefined) this.deliver(message as unknown as BaresipEvent)
    }
  }

  private deliver (event: BaresipEvent): void {
    const waiter = this.eventWaiters.findIndex((w) => w.matches(event))
    if (waiter !== -1) this.eventWaiters.splice(waiter, 1)[0].resolve(event)
    else this.events.push(event)
  }
}

export const hasBaresip = (): boolean => existsSync(BARESIP)
