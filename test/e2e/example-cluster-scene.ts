import { after, before } from 'node:test'
import * as JsSIP from 'jssip'
import { startRedis, type RedisServer } from '../helpers/redis'
import { reportedSetUp } from '../helpers/set-up'
import type { ExampleProcess } from './example-process'
import type { Crowd } from './jssip-crowd'

/** What a chaos test of the example's cluster runs: one Redis, the nodes and the crowds it adds. */
export interface ClusterScene {
  redis: RedisServer
  /** Every node started, to be killed after (a stopped one is continued first). */
  nodes: ExampleProcess[]
  crowds: Crowd[]
}

/**
 * Adds the hooks of a chaos test to the enclosing `describe`: a real redis-server before, and after, the
 * crowds stopped, the nodes killed (SIGCONT first, in case one was left stopped) and Redis stopped.
 */
export function clusterScene (): ClusterScene {
  const scene = { nodes: [], crowds: [] } as unknown as ClusterScene
  before(reportedSetUp(async () => {
    JsSIP.debug.disable()
    scene.redis = await startRedis()
  }))
  after(async () => {
    for (const crowd of scene.crowds) crowd.close()
    for (const node of scene.nodes) {
      if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill('SIGCONT')
      await node.kill()
    }
    await scene.redis?.stop()
  })
  return scene
}

/** A node's WebSocket URL. */
export const wsUrl = (node: ExampleProcess): string => node.url.replace(/^http/, 'ws')

/** Lets traffic run: the time is what the scenario is made of, not a wait for an event. */
export async function traffic (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}
