/**
 * Wraps a suite's `before` body so that its failure is printed where it happens. node:test reports a
 * failed `before` only after the cancelled tests it took down, and a CI log cut to its first failure then
 * shows the cancellations without their cause.
 */
export function reportedSetUp (body: () => Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await body()
    } catch (err) {
      process.stderr.write(`set-up failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
      throw err
    }
  }
}
