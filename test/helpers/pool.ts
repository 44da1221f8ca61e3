/**
 * Runs `task(0)` .. `task(count - 1)` with at most `concurrency` running at once. After the first failure no
 * new task starts; the running ones settle, then the first error is thrown.
 */
export async function runConcurrently (count: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0
  let failure: { error: unknown } | null = null
  const worker = async (): Promise<void> => {
    while (failure === null && next < count) {
      const index = next++
      try {
        await task(index)
      } catch (error) {
        if (failure === null) failure = { error }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
  if (failure !== null) throw (failure as { error: unknown }).error
}

/** Rejects with `message` if `promise` has not settled within `ms`; the timer never outlives the promise. */
export async function within<T> (promise: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`${message()} (no result within ${ms} ms)`)) }, ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Asks `probe` until it says true: every `everyMs` (0: at each turn of the event loop), for at most `ms`
 * in all, probe included. Past that it rejects with `message` and asks no more, where a polling loop raced
 * against a timer would go on polling after its test failed.
 */
export async function until (probe: () => boolean | Promise<boolean>, ms: number, message: () => string, everyMs = 50): Promise<void> {
  const deadline = performance.now() + ms
  const failed = (): Error => new Error(`${message()} (not within ${ms} ms)`)
  for (;;) {
    const left = deadline - performance.now()
    if (left <= 0) throw failed()
    if (await within(Promise.resolve(probe()), left, message)) return
    await new Promise((resolve) => { if (everyMs === 0) setImmediate(resolve); else setTimeout(resolve, everyMs) })
  }
}
