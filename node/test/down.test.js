'use strict'
// Redis down is an error, never 423 (resource_locked).
const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const redisLock = require('..')
const { startRedis, freePort } = require('./support/redis')

/** A logger that records every call. */
function recorder () {
  const calls = []
  const logger = {}
  for (const level of ['log', 'info', 'warn', 'error']) logger[level] = (...args) => calls.push([level, ...args])
  return { logger, calls }
}

describe('Redis down', () => {
  it('a killed server: lockKey, releaseLock and getLock reject with redisDown (503), not 423', async () => {
    const server = await startRedis()
    const locks = redisLock.create()
    const { logger, calls } = recorder()
    await locks.init({ redis: server.url, logger })
    const v = await locks.lockKey({ redisKey: 'down:k' })
    await server.kill()
    for (const call of [
      () => locks.lockKey({ redisKey: 'down:k' }),
      () => locks.lockKey({ redisKey: 'down:other' }),
      () => locks.releaseLock({ redisKey: 'down:k', value: v }),
      () => locks.getLock({ redisKey: 'down:k' }),
      () => locks.acquire('down:k', { wait: 0 })
    ]) {
      const started = Date.now()
      const err = await call().then(() => null, (e) => e)
      assert.ok(err, 'resolved while Redis is down')
      assert.notEqual(err.code, 423)
      assert.notEqual(err.message, 'resource_locked')
      assert.equal(err.message, 'redisDown')
      assert.equal(err.code, 503)
      assert.ok(Date.now() - started < 5000, 'within the command timeout')
    }
    assert.ok(calls.some((c) => c[0] === 'error' && c[1].message === 'redisDown'), 'logged at error')
    assert.ok(!JSON.stringify(calls).includes(v), 'no lock value in the logs')
    await locks.close().catch(() => {})
    await server.stop()
  })

  it('init against a port nobody listens on logs cannotConnectToRedis and rejects (not 423)', async () => {
    const port = await freePort()
    const locks = redisLock.create()
    const { logger, calls } = recorder()
    const err = await locks.init({ redis: `redis://127.0.0.1:${port}`, logger }).then(() => null, (e) => e)
    assert.ok(err)
    assert.equal(err.message, 'redisDown')
    assert.deepEqual(calls.filter((c) => c[0] === 'error').map((c) => c[1]), [{ message: 'cannotConnectToRedis' }])
    await assert.rejects(locks.lockKey({ redisKey: 'k' }), { message: 'redisDown', code: 503 })
    await locks.close().catch(() => {})
  })

  it('a server that comes back is used again without a new init', async () => {
    const server = await startRedis()
    const locks = redisLock.create()
    await locks.init({ redis: server.url })
    const port = server.port
    await server.stop()
    await assert.rejects(locks.lockKey({ redisKey: 'back:k' }), { code: 503 })
    const again = await startRedis([], { port })
    assert.equal(typeof await locks.lockKey({ redisKey: 'back:k' }), 'string')
    await locks.close()
    await again.stop()
  })
})
