/**
 * The part of a pino logger the client uses; Fastify's `app.log` and `pino()` fit as they are.
 * Every call passes structured fields first, like pino.
 */
export interface LwscLogger {
  debug: (obj: object, msg?: string) => void
  info: (obj: object, msg?: string) => void
  warn: (obj: object, msg?: string) => void
  error: (obj: object, msg?: string) => void
}

function ignore (): void {}

export const silentLogger: LwscLogger = Object.freeze({ debug: ignore, info: ignore, warn: ignore, error: ignore })
