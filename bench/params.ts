/**
 * How long and how often each measure of `npm run bench` runs. Rounds of the socket measures are 2 s after
 * a warm-up: on this 2-core VM, 0.75 s rounds left the control (C-copy against C) straying ±15–40%, 2 s
 * rounds held it near ±4% when the machine was otherwise idle. 7 rounds give a median and, with the most
 * extreme round at each end set aside, a noise floor (bench/verdict.ts). `npm run bench` stays within 15
 * minutes with these; the measures without a goal, or whose control cannot reach the floor within that
 * time (message sizes, the whole machine), run in `npm run bench:more`.
 */
export interface Params {
  rtt: { rounds: number, seconds: number, warmupMs: number, conns: number[] }
  sizes: { rounds: number, seconds: number, warmupMs: number, sizes: number[], conns: number }
  handshakes: { rounds: number, seconds: number, warmupMs: number, concurrency: number }
  machine: { rounds: number, seconds: number, warmupMs: number, conns: number[] }
  storm: { rounds: number, clients: number, deadlineMs: number, attemptTimeoutMs: number }
  idle: { rounds: number, count: number }
  registry: { sizes: number[], rounds: number }
  lwsc: { rounds: number, seconds: number, httpConcurrency: number }
  /** Load generator processes (the storm and the memory measure spread their connections over them). */
  loaders: number
  /** Whether the round-trip rounds start fresh target processes (the smoke run's one round has just started them). */
  freshProcesses: boolean
}

export const FULL: Params = {
  // 2 s of warm-up: each round's processes are new, and a new A was still compiling its message path after
  // 0.5 s (V8's compiler threads, pinned to the server core too, used 4.4 µs a round trip in A's window and
  // 1.9 in C's; after 2 s, 0.3–0.4 in both: bench/README.md, "Per message, second pass").
  rtt: { rounds: 7, seconds: 2, warmupMs: 2000, conns: [1, 50, 500] },
  sizes: { rounds: 7, seconds: 1, warmupMs: 250, sizes: [0, 4096, 16384, 65536], conns: 50 },
  handshakes: { rounds: 7, seconds: 2, warmupMs: 500, concurrency: 20 },
  machine: { rounds: 7, seconds: 2, warmupMs: 500, conns: [50, 500] },
  // 10,000 clients over 4 load processes: 2,500 sockets each, far under 20,000 open files a process.
  storm: { rounds: 3, clients: 10_000, deadlineMs: 60_000, attemptTimeoutMs: 30_000 },
  // 3 rounds for memory, which swings less and costs most (15,000 connections per target and round).
  idle: { rounds: 3, count: 15_000 },
  registry: { sizes: [1_000, 100_000, 1_000_000], rounds: 101 },
  lwsc: { rounds: 8, seconds: 0.75, httpConcurrency: 8 },
  loaders: 4,
  freshProcesses: true
}

export const SMOKE: Params = {
  rtt: { rounds: 1, seconds: 0.2, warmupMs: 50, conns: [1, 5] },
  sizes: { rounds: 1, seconds: 0.2, warmupMs: 50, sizes: [0, 4096], conns: 5 },
  handshakes: { rounds: 1, seconds: 0.2, warmupMs: 50, concurrency: 4 },
  machine: { rounds: 1, seconds: 0.2, warmupMs: 50, conns: [10] },
  storm: { rounds: 1, clients: 200, deadlineMs: 20_000, attemptTimeoutMs: 10_000 },
  idle: { rounds: 1, count: 200 },
  registry: { sizes: [1_000], rounds: 5 },
  lwsc: { rounds: 1, seconds: 0.2, httpConcurrency: 2 },
  loaders: 2,
  freshProcesses: false
}

/** What `npm run bench` measures; `npm run bench:more` runs the rest. */
export const DEFAULT_MEASURES = ['rtt', 'handshakes', 'storm']
/**
 * Apart: no goal of their own to decide (sizes), or a control that cannot reach ±5% here (the whole
 * machine; memory ±9–24%, the registry's timings ±98–113%, lwsc ±21–78%: its verdict flipped between the
 * two runs of record), or no control at all (cluster, whose figures are its own lines).
 */
export const MORE_MEASURES = ['sizes', 'machine', 'idle', 'registry', 'lwsc', 'cluster']
