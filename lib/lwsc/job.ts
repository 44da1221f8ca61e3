import type { WsData } from '../types'

/**
 * One send waiting for or using a connection. `next` links it into a queue, so queueing allocates nothing
 * beyond the job itself.
 */
export class Job {
  next: Job | null = null

  constructor (
    readonly data: WsData,
    readonly expectsReply: boolean,
    readonly resolve: (value: string | Buffer | undefined) => void,
    readonly reject: (err: Error) => void
  ) {}
}

/** FIFO of jobs; O(1) push and shift. */
export class JobQueue {
  length = 0
  private head: Job | null = null
  private tail: Job | null = null

  push (job: Job): void {
    job.next = null
    if (this.tail === null) this.head = job
    else this.tail.next = job
    this.tail = job
    this.length++
  }

  shift (): Job | null {
    const job = this.head
    if (job === null) return null
    this.head = job.next
    if (this.head === null) this.tail = null
    job.next = null
    this.length--
    return job
  }

  /** Empties the queue and hands back its first job; follow `next` to walk the rest. */
  takeAll (): Job | null {
    const head = this.head
    this.head = this.tail = null
    this.length = 0
    return head
  }
}
