import type { FastifyError, FastifyErrorConstructor } from '@fastify/error'

/** Every lwsc error names its target, so a caller fanning out to many URLs can tell which one failed. */
export type LwscError = FastifyError & { url: string }

export function withUrl<E extends FastifyError> (err: E, url: string): E & { url: string } {
  return Object.assign(err, { url })
}

/**
 * An lwsc error class whose errors carry their first argument, the target, in `url`: however one is built,
 * it has the `url` its type promises, and `instanceof` narrows a caught error to a type that has it.
 */
export function targetError<E extends { code: string, statusCode?: number }, A extends unknown[]> (Base: FastifyErrorConstructor<E, A>): FastifyErrorConstructor<E & { url: string }, A> {
  function TargetError (...args: A): FastifyError & E & { url: string } {
    const err = withUrl(new Base(...args), String(args[0]))
    // Its stack starts where the error was raised, as @fastify/error's own do, not in this wrapper (and
    // stays off where @fastify/error's captureStackTrace is off).
    if (Object.hasOwn(err, 'stack')) Error.captureStackTrace(err, TargetError)
    return err
  }
  TargetError.prototype = Base.prototype
  return TargetError as unknown as FastifyErrorConstructor<E & { url: string }, A>
}
