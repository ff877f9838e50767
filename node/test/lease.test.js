'use strict'
// The lease API: acquire / release / extend / fencingToken / signal / using.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { randomUUID } = require('node:crypto')
const Redis = require('ioredis')
const redisLock = require('..')
const { startRedis, sleep } = require('./support/redis')

const key = () => `lease:${randomUUID()}`
const aborted = (signal) => new Promise((resolve) => {
  if (signal.aborted) resolve(signal.reason)
  else signal.addEventListener('abort', () => resolve(signal.reason), { once: true })
})

describe('leases on Redis', () => {
  let server, raw, locks, other

  before(async () => {
    server = await startRedis()
    raw = new Redis(server.port, '127.0.0.1')
    locks = redisLock.create()
    await locks.init({ redis: server.url })
    other = redisLock.create()
    await other.init({ redis: server.url })
  })
  after(async () => {
    await locks.close()
    await other.close()
    raw.disconnect()
    await server.stop()
  })

  it('acquire gives a handle; the key holds its value; release frees it', async () => {
    const k = key()
    const lease = await locks.acquire(k, { ttl: 5000 })
    assert.equal(lease.key, k)
    assert.equal(typeof lease.value, 'string')
    assert.equal(lease.fencingToken, null)
    assert.equal(lease.isHeld, true)
    assert.ok(lease.remaining > 4000 && lease.remaining <= 5000, `remaining ${lease.remaining}`)
    assert.ok(lease.signal instanceof AbortSignal)
    assert.equal(await raw.get(k), lease.value)
    const pttl = await raw.pttl(k)
    assert.ok(pttl > 4000 && pttl <= 5000)
    await assert.rejects(other.lockKey({ redisKey: k }), { message: 'resource_locked', code: 423 })
    await assert.rejects(other.acquire(k, { wait: 0 }), { message: 'resource_locked', code: 423 })
    await lease.release()
    assert.equal(await raw.exists(k), 0)
    assert.equal(lease.signal.aborted, false, 'a release is not a loss')
    await assert.rejects(lease.release(), { message: 'lease_lost', code: 410 })
  })

  it('fencing tokens strictly increase per key', async () => {
    const k = key()
    const a = await locks.acquire(k, { fencing: true })
    await a.release()
    const b = await other.acquire(k, { fencing: true })
    await b.release()
    assert.equal(typeof a.fencingToken, 'number')
    assert.ok(Number.isSafeInteger(b.fencingToken))
    assert.ok(b.fencingToken > a.fencingToken, `${b.fencingToken} > ${a.fencingToken}`)
  })

  it('a waiter is woken by the release and holds the lock right after', async () => {
    const k = key()
    const holder = await locks.acquire(k)
    const waiting = other.acquire(k, { wait: 5000 }).then((lease) => ({ lease, at: performance.now() }))
    await sleep(200)
    const releasedAt = performance.now()
    await holder.release()
    const { lease, at } = await waiting
    assert.equal(await raw.get(k), lease.value)
    assert.ok(at - releasedAt < 200, `took ${at - releasedAt} ms after the release`)
    await lease.release()
  })

  it('a wait that runs out rejects with resource_locked (423)', async () => {
    const k = key()
    const holder = await locks.acquire(k)
    const started = Date.now()
    await assert.rejects(other.acquire(k, { wait: 300 }), { message: 'resource_locked', code: 423 })
    assert.ok(Date.now() - started >= 250)
    await holder.release()
  })

  it('extend sets the lease anew', async () => {
    const k = key()
    const lease = await locks.acquire(k, { ttl: 500 })
    const left = await lease.extend(5000)
    assert.ok(left > 4000, `left ${left}`)
    await sleep(700)
    assert.equal(lease.isHeld, true)
    assert.ok(await raw.pttl(k) > 3000)
    await lease.release()
    await assert.rejects(lease.extend(1000), { message: 'lease_lost' })
  })

  it('without renewal the signal fires when the lease expires', async () => {
    const k = key()
    const lease = await locks.acquire(k, { ttl: 300 })
    const reason = await aborted(lease.signal)
    assert.equal(reason.message, 'lease_lost')
    assert.equal(reason.code, 410)
    assert.equal(reason.lossReason, 'expired')
    assert.equal(lease.isHeld, false)
    await sleep(100) // the local deadline comes a drift margin before Redis drops the key
    await assert.rejects(lease.release(), { message: 'lease_lost' })
  })

  it('autoRenew keeps the lease past its ttl', async () => {
    const k = key()
    const lease = await locks.acquire(k, { ttl: 1000, autoRenew: true })
    await sleep(2500)
    assert.equal(lease.isHeld, true)
    assert.equal(lease.signal.aborted, false)
    assert.equal(await raw.get(k), lease.value)
    await lease.release()
    assert.equal(await raw.exists(k), 0)
  })

  it('the signal fires when the key is taken over or deleted behind the lease', async () => {
    const k = key()
    const lease = await locks.acquire(k, { ttl: 900, autoRenew: true })
    await raw.set(k, 'someone-else', 'PX', 5000)
    const reason = await aborted(lease.signal)
    assert.equal(reason.lossReason, 'takenOver')
    await assert.rejects(lease.release())
    assert.equal(await raw.get(k), 'someone-else', 'the other holder keeps it')

    const k2 = key()
    const lease2 = await locks.acquire(k2, { ttl: 900, autoRenew: true })
    await raw.del(k2)
    assert.equal((await aborted(lease2.signal)).lossReason, 'deleted')
  })

  it('using runs the work while holding, returns its result and releases', async () => {
    const k = key()
    const result = await locks.using(k, { ttl: 2000 }, async (signal, lease) => {
      assert.equal(signal.aborted, false)
      assert.equal(await raw.get(k), lease.value)
      await assert.rejects(other.lockKey({ redisKey: k }), { code: 423 })
      return 'done'
    })
    assert.equal(result, 'done')
    assert.equal(await raw.exists(k), 0)
    assert.equal(await locks.using(k, async () => 7), 7, 'options may be left out')
  })

  it('using releases when the work throws, and passes the error on', async () => {
    const k = key()
    await assert.rejects(locks.using(k, async () => { throw new Error('boom') }), { message: 'boom' })
    assert.equal(await raw.exists(k), 0)
  })

  it('using rejects with lease_lost when the lease was lost during the work', async () => {
    const k = key()
    const err = await locks.using(k, { ttl: 900 }, async (signal) => {
      await raw.del(k)
      await aborted(signal)
      return 'should not count'
    }).then(() => null, (e) => e)
    assert.equal(err.message, 'lease_lost')
    assert.equal(err.code, 410)
  })

  it('a lease and lockKey share the same lock', async () => {
    const k = key()
    const v = await other.lockKey({ redisKey: k, expires: 5 })
    await assert.rejects(locks.acquire(k, { wait: 0 }), { code: 423 })
    await other.releaseLock({ redisKey: k, value: v })
    const lease = await locks.acquire(k, { wait: 0 })
    assert.equal(await other.getLock({ redisKey: k }), lease.value)
    await lease.release()
  })

  it('close releases what leases still hold', async () => {
    const inst = redisLock.create()
    await inst.init({ redis: server.url })
    const k = key()
    const lease = await inst.acquire(k, { autoRenew: true })
    await inst.close()
    assert.equal(await raw.exists(k), 0)
    assert.equal((await aborted(lease.signal)).lossReason, 'closed')
  })
})

describe('leases in memory', () => {
  it('acquire, wait for a release, fencing, using', async () => {
    const mem = redisLock.create()
    await mem.init({})
    const a = await mem.acquire('m', { fencing: true })
    const waiting = mem.acquire('m', { wait: 2000, fencing: true })
    await sleep(50)
    await a.release()
    const b = await waiting
    assert.ok(b.fencingToken > a.fencingToken)
    await b.release()
    assert.equal(await mem.using('m', async () => 'ok'), 'ok')
    await mem.close()
  })
})
