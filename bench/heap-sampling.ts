/**
 * Allocation by call site inside a bench target, from V8's sampling heap profiler (through node:inspector),
 * counting objects the young and old collections have freed too: what a message allocates, not what
 * survives it. The sampling interval is in bytes; a site's share is accurate, its bytes an estimate.
 */
import { Session } from 'node:inspector'
import { join } from 'node:path'

interface SamplingNode { callFrame: { functionName: string, url: string, lineNumber: number }, selfSize: number, children: SamplingNode[] }

export interface Allocations {
  /** Sampled bytes allocated while sampling ran. */
  bytes: number
  /** Bytes by function (name, file and line), most first. */
  sites: Array<[string, number]>
}

const ROOT = join(__dirname, '..')
let session: Session | null = null

async function post<T> (method: string, params?: object): Promise<T> {
  return await new Promise((resolve, reject) => {
    session?.post(method, params, (err, result) => { err === null ? resolve(result as T) : reject(err) })
  })
}

export async function startSampling (intervalBytes: number): Promise<void> {
  if (session === null) {
    session = new Session()
    session.connect()
  }
  await post('HeapProfiler.enable')
  await post('HeapProfiler.startSampling', { samplingInterval: intervalBytes, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
}

export async function stopSampling (): Promise<Allocations> {
  const { profile } = await post<{ profile: { head: SamplingNode } }>('HeapProfiler.stopSampling')
  const sites = new Map<string, number>()
  let bytes = 0
  const walk = (node: SamplingNode): void => {
    if (node.selfSize > 0) {
      const { functionName, url, lineNumber } = node.callFrame
      const file = url.replace(/^file:\/\//, '').replace(ROOT + '/', '')
      // tsx's output does not keep a TypeScript file's lines: name those by file alone.
      const line = file === '' || file.endsWith('.ts') ? '' : `:${lineNumber + 1}`
      const name = `${functionName === '' ? '(anonymous)' : functionName} ${file}${line}`
      sites.set(name, (sites.get(name) ?? 0) + node.selfSize)
      bytes += node.selfSize
    }
    for (const child of node.children) walk(child)
  }
  walk(profile.head)
  return { bytes, sites: [...sites].sort((a, b) => b[1] - a[1]) }
}
