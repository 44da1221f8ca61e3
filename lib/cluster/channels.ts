/**
 * The names of the node's Redis channels: one control channel every node subscribes to, and one per lease
 * (slot and epoch, see ids.ts) that only its holder subscribes to. Names are kept once made, so the hot path
 * of a remote send builds no string.
 */
export class Channels {
  readonly control: string
  private readonly names = new Map<number, string>()

  constructor (private readonly keyPrefix: string) {
    this.control = `${keyPrefix}:ctl`
  }

  /** The channel of the lease `prefix` names. */
  of (prefix: number): string {
    let name = this.names.get(prefix)
    if (name === undefined) {
      name = `${this.keyPrefix}:c:${prefix}`
      if (this.names.size > 4096) this.names.clear()
      this.names.set(prefix, name)
    }
    return name
  }

  forget (prefix: number): void {
    this.names.delete(prefix)
  }
}
