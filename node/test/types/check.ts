// Compiled (not run) by types.test.js: the declarations in index.d.ts fit the documented use.
import redisLock = require('../..')

async function seed (): Promise<void> {
  await redisLock.init({ redis: 'redis://localhost/', logLevel: 'info', suppressMismatch: true })
  const n: number = await redisLock.lockKey({ redisKey: 'k', value: 5, expires: 30 })
  const token: string = await redisLock.lockKey({ redisKey: 'k' })
  await redisLock.releaseLock({ redisKey: 'k', value: token, suppressMismatch: false })
  await redisLock.releaseLock({ redisKey: 'k' })
  const held: string | null = await redisLock.getLock({ redisKey: 'k' })
  const other = redisLock.create()
  await other.init()
  try {
    await other.lockKey({ redisKey: 'x' })
  } catch (e) {
    const err = e as redisLock.ACError
    const code: number = err.code
    console.log(code, n, held, err.errorMessage)
  }
  const made = new redisLock.ACError('resource_locked', 423)
  console.log(made.code)
}

async function leases (): Promise<void> {
  const lease: redisLock.Lease = await redisLock.acquire('k', { ttl: 1000, wait: 0, autoRenew: true, fencing: true, holder: 'web-3:42' })
  const fence: number | null = lease.fencingToken
  const signal: AbortSignal = lease.signal
  const left: number = await lease.extend(2000)
  await lease.release()
  const r: number = await redisLock.using('k', { autoRenew: true }, async (s, l) => (s.aborted ? 0 : l.remaining))
  const q: string = await redisLock.using('k', () => 'sync result')
  const reason: redisLock.LossReason = 'takenOver'
  console.log(fence, signal, left, r, q, reason)
  await redisLock.close()
}

void seed
void leases
