import type { FastifyError } from '@fastify/error'

/** Every lwsc error names its target, so a caller fanning out to many URLs can tell which one failed. */
export type LwscError = FastifyError & { url: string }

export function withUrl<E extends FastifyError> (err: E, url: string): E & { url: string } {
  return Object.assign(err, { url })
}
