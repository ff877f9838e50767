'use strict'
// Bad input gets the original's errors, before anything is sent, on Redis and in memory alike.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const Redis = require('ioredis')
const redisLock = require('..')
const { startRedis } = require('./support/redis')

describe('bad input', () => {
  let server, raw, onRedis, inMemory

  before(async () => {
    server = await startRedis()
    raw = new Redis(server.port, '127.0.0.1')
    onRedis = redisLock.create()
    await onRedis.init({ redis: server.url })
    inMemory = redisLock.create()
    await inMemory.init({})
  })
  after(async () => {
    await onRedis.close()
    await inMemory.close()
    raw.disconnect()
    await server.stop()
  })

  for (const [name, pick] of [['Redis', () => onRedis], ['memory', () => inMemory]]) {
    describe(`on ${name}`, () => {
      it('a missing or falsy redisKey is <fn>_redisKey_isRequired, code -1', async () => {
        const locks = pick()
        for (const redisKey of [undefined, '', 0, null]) {
          await assert.rejects(locks.lockKey({ redisKey }), { message: 'lockKey_redisKey_isRequired', code: -1 })
          await assert.rejects(locks.releaseLock({ redisKey, value: 'x' }), { message: 'releaseLock_redisKey_isRequired', code: -1 })
          await assert.rejects(locks.getLock({ redisKey }), { message: 'getLock_redisKey_isRequired', code: -1 })
        }
        await assert.rejects(locks.lockKey(), { message: 'lockKey_redisKey_isRequired' })
        await assert.rejects(locks.lockKey({}), { message: 'lockKey_redisKey_isRequired' })
      })

      it('an expiry of zero or below is Redis\'s "invalid expire time", never a lock', async () => {
        const locks = pick()
        for (const expires of [0, -1, '-5', '0']) {
          const err = await locks.lockKey({ redisKey: 'bad:expiry', expires }).then(() => null, (e) => e)
          assert.ok(err, `expires ${expires} was accepted`)
          assert.equal(err.message, "ERR invalid expire time in 'set' command")
          assert.notEqual(err.code, 423)
        }
        assert.equal(await raw.exists('bad:expiry'), 0)
      })

      it('an expiry that is not a whole number is Redis\'s "not an integer"', async () => {
        const locks = pick()
        for (const expires of [1.5, null, 'abc', NaN, Infinity, {}, true]) {
          await assert.rejects(locks.lockKey({ redisKey: 'bad:expiry', expires }),
            { message: 'ERR value is not an integer or out of range' }, `expires ${String(expires)}`)
        }
        assert.equal(await raw.exists('bad:expiry'), 0)
      })

      it('a value that is not a string or a number is refused; an empty one too', async () => {
        const locks = pick()
        for (const value of [{ a: 1 }, ['a', 'b'], true, () => 1, Symbol('s'), NaN]) {
          await assert.rejects(locks.lockKey({ redisKey: 'bad:value', value }),
            { message: 'lockKey_value_mustBeString', code: -1 }, `value ${String(value)}`)
        }
        await assert.rejects(locks.lockKey({ redisKey: 'bad:value', value: '' }), { message: 'lockKey_value_mustNotBeEmpty' })
        await assert.rejects(locks.releaseLock({ redisKey: 'bad:value', value: { a: 1 } }), { message: 'releaseLock_value_mustBeString' })
        await assert.rejects(locks.getLock({ redisKey: 'bad:value', value: ['x'] }), { message: 'getLock_value_mustBeString' })
        assert.equal(await raw.exists('bad:value'), 0)
      })

      it('a key that is not a string or a number is refused; numbers are their text', async () => {
        const locks = pick()
        await assert.rejects(locks.lockKey({ redisKey: { k: 1 } }), { message: 'lockKey_redisKey_mustBeString' })
        const v = await locks.lockKey({ redisKey: 4242, expires: 2 })
        assert.equal(await locks.getLock({ redisKey: '4242' }), v)
        await locks.releaseLock({ redisKey: 4242, value: v })
      })

      it('lease options out of range are refused', async () => {
        const locks = pick()
        await assert.rejects(locks.acquire(''), { message: 'acquire_redisKey_isRequired' })
        await assert.rejects(locks.acquire('k', { ttl: 0 }), { message: 'acquire_ttl_invalid', code: 400 })
        await assert.rejects(locks.acquire('k', { ttl: -5 }), { message: 'acquire_ttl_invalid' })
        await assert.rejects(locks.acquire('k', { wait: -1 }), { message: 'acquire_wait_invalid' })
        await assert.rejects(locks.acquire('k', { ttl: '10' }), { message: 'acquire_ttl_invalid' })
      })
    })
  }

  it('calls before init say so (the original throws a TypeError)', async () => {
    const fresh = redisLock.create()
    await assert.rejects(fresh.lockKey({ redisKey: 'k' }), { message: 'lockKey_notInitialized' })
    await assert.rejects(fresh.acquire('k'), { message: 'acquire_notInitialized' })
  })

  it('init with something that is not a Redis client says so', async () => {
    const fresh = redisLock.create()
    await assert.rejects(fresh.init({ redis: { foo: 1 } }), { message: 'init_redisNotSupported' })
    await assert.rejects(fresh.init({ redis: 'http://example.com' }), { message: 'init_invalidInput', code: 400 })
  })
})
