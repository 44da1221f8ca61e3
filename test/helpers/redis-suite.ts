import { after, before } from 'node:test'
import IORedis from 'ioredis'
import { startRedis, type RedisServer } from './redis'
import { reportedSetUp } from './set-up'

/**
 * A real redis-server and one client to it for the suite this is called in: started before its tests,
 * disconnected and stopped by pid after them. `use` gets both once they are up.
 */
export function redisPerSuite (use: (redis: RedisServer, client: IORedis) => void): void {
  let redis: RedisServer | undefined
  let client: IORedis | undefined
  before(reportedSetUp(async () => {
    redis = await startRedis()
    client = new IORedis(redis.url)
    use(redis, client)
  }))
  after(async () => {
    client?.disconnect()
    await redis?.stop()
  })
}
