'use strict'
// The original's API (v6) on a private redis-server: init, lockKey, releaseLock, getLock,
// create, the in-memory fallback, init once / reInit, suppressMismatch, logging.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { randomUUID } = require('node:crypto')
const Redis = require('ioredis')
const redisLock = require('..')
const { startRedis, sleep } = require('./support/redis')

const key = () => `test:${randomUUID()}`

/** A logger that records every call: [level, ...args]. */
function recorder () {
  const calls = []
  const logger = {}
  for (const level of ['log', 'info', 'debug', 'warn', 'error', 'silly']) {
    logger[level] = (...args) => calls.push([level, ...args])
  }
  return { logger, calls }
}

describe('the original API on Redis', () => {
  let server, raw, locks

  before(async () => {
    server = await startRedis()
    raw = new Redis(server.port, '127.0.0.1')
    locks = redisLock.create()
    await locks.init({ redis: new Redis(server.port, '127.0.0.1', { lazyConnect: true }) })
  })
  after(async () => {
    await locks.close()
    raw.disconnect()
    await server.stop()
  })

  it('exports what the original exports', () => {
    for (const fn of ['init', 'lockKey', 'releaseLock', 'getLock', 'create']) {
      assert.equal(typeof redisLock[fn], 'function', fn)
    }
    assert.equal(typeof locks.create, 'undefined', 'instances made by create() have no create, as in the original')
  })

  it('lockKey: SET key value EX 10 NX by default, with a random token, returned', async () => {
    const k = key()
    const value = await locks.lockKey({ redisKey: k })
    assert.equal(typeof value, 'string')
    assert.ok(value.length >= 32)
    assert.equal(await raw.get(k), value)
    const ttl = await raw.ttl(k)
    assert.ok(ttl > 8 && ttl <= 10, `ttl ${ttl}`)
    assert.equal(await raw.type(k), 'string')
  })

  it('lockKey: expires in seconds, the value returned exactly as given', async () => {
    const k = key()
    assert.equal(await locks.lockKey({ redisKey: k, expires: 3, value: 'worker-7' }), 'worker-7')
    const pttl = await raw.pttl(k)
    assert.ok(pttl > 2000 && pttl <= 3000, `pttl ${pttl}`)
    const k2 = key()
    const n = await locks.lockKey({ redisKey: k2, value: 12345 })
    assert.equal(n, 12345, 'a number stays a number')
    assert.equal(await raw.get(k2), '12345')
    const k3 = key()
    assert.equal(await locks.lockKey({ redisKey: k3, expires: '5' }).then((v) => typeof v), 'string')
    assert.equal(await raw.ttl(k3), 5, "'5' is taken as 5 seconds, as the original sends it")
  })

  it('lockKey on a held key rejects with resource_locked, code 423, as the original', async () => {
    const k = key()
    await locks.lockKey({ redisKey: k, value: 'a' })
    const err = await locks.lockKey({ redisKey: k }).then(() => null, (e) => e)
    assert.ok(err instanceof Error)
    assert.equal(err.message, 'resource_locked')
    assert.equal(err.code, 423)
    assert.equal(err.errorMessage, 'resource_locked')
    assert.equal(err.name, 'Error')
    assert.deepEqual(Object.keys(err), ['code', 'errorMessage'])
    assert.equal(JSON.stringify(err), '{"code":423,"errorMessage":"resource_locked"}')
    assert.equal(await raw.get(k), 'a', 'the holder keeps it')
  })

  it('a lock expires after its seconds and can be taken again', async () => {
    const k = key()
    await locks.lockKey({ redisKey: k, expires: 1 })
    await sleep(1100)
    assert.equal(await locks.lockKey({ redisKey: k, expires: 1, value: 'again' }), 'again')
  })

  it('releaseLock with the value deletes; with another value rejects valueMismatch and keeps it', async () => {
    const k = key()
    const v = await locks.lockKey({ redisKey: k })
    const err = await locks.releaseLock({ redisKey: k, value: 'other' }).then(() => null, (e) => e)
    assert.equal(err.message, 'releaseLock_valueMismatch')
    assert.equal(err.code, -1)
    assert.equal(await raw.get(k), v)
    assert.equal(await locks.releaseLock({ redisKey: k, value: v }), undefined)
    assert.equal(await raw.exists(k), 0)
  })

  it('releaseLock of a missing key with a value is a mismatch, as the original', async () => {
    const err = await locks.releaseLock({ redisKey: key(), value: 'x' }).then(() => null, (e) => e)
    assert.equal(err.message, 'releaseLock_valueMismatch')
  })

  it('releaseLock with a number value compares its text (the original never matches it)', async () => {
    const k = key()
    await locks.lockKey({ redisKey: k, value: 777 })
    await locks.releaseLock({ redisKey: k, value: 777 })
    assert.equal(await raw.exists(k), 0)
  })

  it('suppressMismatch per call, and per instance from init, resolves quietly', async () => {
    const k = key()
    await locks.lockKey({ redisKey: k, value: 'mine' })
    await locks.releaseLock({ redisKey: k, value: 'other', suppressMismatch: true })
    assert.equal(await raw.get(k), 'mine')

    const quiet = redisLock.create()
    const { logger, calls } = recorder()
    await quiet.init({ redis: server.url, suppressMismatch: true, logger })
    await quiet.releaseLock({ redisKey: k, value: 'other' })
    const err = await quiet.releaseLock({ redisKey: k, value: 'other', suppressMismatch: false }).then(() => null, (e) => e)
    assert.equal(err.message, 'releaseLock_valueMismatch', 'the per-call setting wins')
    assert.deepEqual(calls.filter((c) => c[0] === 'warn').length, 1, 'only the unsuppressed mismatch is logged')
    assert.equal(await raw.get(k), 'mine')
    await quiet.close()
  })

  it('releaseLock without a value (or a falsy one) is a force release, as the original', async () => {
    const k = key()
    await locks.lockKey({ redisKey: k, value: 'someone' })
    await locks.releaseLock({ redisKey: k })
    assert.equal(await raw.exists(k), 0)
    await locks.lockKey({ redisKey: k, value: 'someone' })
    await locks.releaseLock({ redisKey: k, value: '' })
    assert.equal(await raw.exists(k), 0)
  })

  it('getLock returns the stored value, null when free; with a value it checks it', async () => {
    const k = key()
    assert.equal(await locks.getLock({ redisKey: k }), null)
    await locks.lockKey({ redisKey: k, value: 'v1' })
    assert.equal(await locks.getLock({ redisKey: k }), 'v1')
    assert.equal(await locks.getLock({ redisKey: k, value: 'v1' }), 'v1')
    const err = await locks.getLock({ redisKey: k, value: 'v2' }).then(() => null, (e) => e)
    assert.equal(err.message, 'getLock_valueMismatch')
    assert.equal(err.code, -1)
  })

  it('a key holding a list is an error (never 423), and is left alone', async () => {
    const k = key()
    await raw.rpush(k, 'x')
    const err = await locks.lockKey({ redisKey: k }).then(() => null, (e) => e)
    assert.ok(err)
    assert.notEqual(err.code, 423)
    assert.equal(await raw.type(k), 'list')
  })

  it('init once: a second init without reInit changes nothing; reInit switches', async () => {
    const inst = redisLock.create()
    await inst.init({ redis: server.url })
    await inst.init({}) // ignored: still on Redis
    const k = key()
    await inst.lockKey({ redisKey: k, value: 'on-redis' })
    assert.equal(await raw.get(k), 'on-redis')
    await inst.init({ reInit: true }) // now in memory
    const k2 = key()
    await inst.lockKey({ redisKey: k2, value: 'in-memory' })
    assert.equal(await raw.exists(k2), 0)
    assert.equal(await inst.getLock({ redisKey: k2 }), 'in-memory')
    await inst.close()
  })

  it('create() makes independent instances (another db, its own locks)', async () => {
    const a = redisLock.create()
    const b = redisLock.create()
    await a.init({ redis: new Redis(server.port, '127.0.0.1', { lazyConnect: true }) })
    await b.init({ redis: new Redis(server.port, '127.0.0.1', { db: 1, lazyConnect: true }) })
    const k = key()
    assert.equal(typeof await a.lockKey({ redisKey: k, expires: 10 }), 'string')
    await assert.rejects(a.lockKey({ redisKey: k }), { message: 'resource_locked' })
    assert.equal(typeof await b.lockKey({ redisKey: k, expires: 10 }), 'string', 'db 1 is another keyspace')
    const db1 = new Redis(server.port, '127.0.0.1', { db: 1 })
    assert.ok(await db1.get(k))
    db1.disconnect()
    await a.close()
    await b.close()
  })

  it('logs each lock attempt at logLevel on the given logger, never the value', async () => {
    const inst = redisLock.create()
    const { logger, calls } = recorder()
    await inst.init({ redis: server.url, logger, logLevel: 'info' })
    const k = key()
    const v = await inst.lockKey({ redisKey: k, expires: 5 })
    await inst.lockKey({ redisKey: k }).catch(() => {})
    await inst.releaseLock({ redisKey: k, value: 'wrong' }).catch(() => {})
    await inst.releaseLock({ redisKey: k, value: v })
    const info = calls.filter((c) => c[0] === 'info')
    assert.equal(info.length, 2)
    assert.deepEqual(info[0].slice(2), [k, 5, 'OK'])
    assert.deepEqual(info[1].slice(2), [k, 10, 423])
    assert.equal(calls.filter((c) => c[0] === 'warn').length, 1, 'the mismatch, at warn')
    assert.ok(!JSON.stringify(calls).includes(v), 'no lock value in any log line')
    await inst.close()
  })

  it('calls made in one tick (one batch) each get their own answer, any text round-trips', async () => {
    // Keys and values beyond ASCII, a lone surrogate (sent as U+FFFD, as Node sends it), a
    // held key, a mismatch and a read, all in one batch.
    const base = key()
    const keys = [`${base}:é`, `${base}:日本`, `${base}:🔒`, `${base}:\ud800`]
    const values = ['välue', '値', '🗝️', 'plain']
    await raw.set(`${base}:held`, 'someone', 'EX', 10)
    const [a, b, c, d, held, got] = await Promise.allSettled([
      ...keys.map((k, i) => locks.lockKey({ redisKey: k, value: values[i] })),
      locks.lockKey({ redisKey: `${base}:held` }),
      locks.getLock({ redisKey: `${base}:held` })
    ])
    assert.deepEqual([a, b, c, d].map((r) => r.value), values)
    assert.equal(held.status, 'rejected')
    assert.equal(held.reason.code, 423)
    assert.equal(got.value, 'someone')
    assert.equal(await raw.get(`${base}:日本`), '値')
    assert.equal(await raw.get(`${base}:\ufffd`), 'plain')
    const released = await Promise.allSettled([
      ...keys.map((k, i) => locks.releaseLock({ redisKey: k, value: values[i] })),
      locks.releaseLock({ redisKey: `${base}:held`, value: 'not-theirs' })
    ])
    assert.deepEqual(released.slice(0, 4).map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled'])
    assert.equal(released[4].reason.message, 'releaseLock_valueMismatch')
    for (const k of keys) assert.equal(await locks.getLock({ redisKey: k }), null)
    assert.equal(await raw.get(`${base}:held`), 'someone')
  })

  it('the default instance works too', async () => {
    await redisLock.init({ redis: server.url, reInit: true })
    const k = key()
    const v = await redisLock.lockKey({ redisKey: k })
    assert.equal(await redisLock.getLock({ redisKey: k }), v)
    await redisLock.releaseLock({ redisKey: k, value: v })
    await redisLock.close()
  })
})

describe('the in-memory fallback (init without redis)', () => {
  it('locks, refuses with 423, expires, releases with the value, gets', async () => {
    const mem = redisLock.create()
    await mem.init({})
    const k = key()
    assert.equal(await mem.lockKey({ redisKey: k, value: 'v', expires: 1 }), 'v')
    await assert.rejects(mem.lockKey({ redisKey: k }), { message: 'resource_locked', code: 423 })
    assert.equal(await mem.getLock({ redisKey: k }), 'v', 'the original returns undefined here (bug); this returns the value')
    await assert.rejects(mem.releaseLock({ redisKey: k, value: 'x' }), { message: 'releaseLock_valueMismatch' })
    await mem.releaseLock({ redisKey: k, value: 'x', suppressMismatch: true })
    await mem.releaseLock({ redisKey: k, value: 'v' })
    assert.equal(await mem.getLock({ redisKey: k }), null)
    await mem.lockKey({ redisKey: k, expires: 1 })
    await sleep(1100)
    assert.equal(await mem.lockKey({ redisKey: k, value: 'w' }), 'w', 'expired')
    await mem.close()
  })

  it('two in-memory instances do not share locks', async () => {
    const a = redisLock.create()
    const b = redisLock.create()
    await a.init({})
    await b.init({})
    const k = key()
    await a.lockKey({ redisKey: k })
    await b.lockKey({ redisKey: k })
  })
})
