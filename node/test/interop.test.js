'use strict'
// On one Redis, both directions: the package and the original's wire protocol (raw ioredis
// doing exactly what ac-redislock v6 sends: SET key value EX n NX, GET, DEL), and the package
// and the Rust crate (the workspace's `redislock` CLI).
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { randomUUID } = require('node:crypto')
const Redis = require('ioredis')
const redisLock = require('..')
const { startRedis, sleep } = require('./support/redis')
const { redislock, redislockBin } = require('./support/cli')

const key = () => `interop:${randomUUID()}`

/** What the original v6 sends, command for command (reference: the wire protocol table). */
function original (raw) {
  return {
    async lockKey ({ redisKey, expires = 10, value = randomUUID() }) {
      const r = await raw.set(redisKey, value, 'EX', expires, 'NX')
      if (r === 'OK') return value
      const err = new Error('resource_locked')
      err.code = 423
      throw err
    },
    async releaseLock ({ redisKey, value }) {
      if (value && (await raw.get(redisKey)) !== value) throw new Error('releaseLock_valueMismatch')
      await raw.del(redisKey)
    },
    getLock: ({ redisKey }) => raw.get(redisKey)
  }
}

describe('interop', () => {
  let server, raw, orig, locks, monitorBase, monitor, seen

  before(async () => {
    server = await startRedis()
    raw = new Redis(server.port, '127.0.0.1')
    orig = original(raw)
    locks = redisLock.create()
    await locks.init({ redis: server.url })
    redislockBin() // built up front, so no test waits for cargo
    seen = []
    monitorBase = new Redis(server.port, '127.0.0.1')
    monitor = await monitorBase.monitor()
    monitor.on('monitor', (_time, args) => seen.push(args))
  })
  after(async () => {
    monitor.disconnect()
    monitorBase.disconnect()
    await locks.close()
    raw.disconnect()
    await server.stop()
  })

  describe('with the original\'s wire protocol', () => {
    it('lockKey sends the original\'s SET key value EX seconds NX', async () => {
      const k = key()
      seen.length = 0
      await locks.lockKey({ redisKey: k, value: 'w1', expires: 7 })
      await sleep(50)
      assert.ok(seen.some((a) => JSON.stringify([a[0].toLowerCase(), ...a.slice(1)]) === JSON.stringify(['set', k, 'w1', 'EX', '7', 'NX'])),
        JSON.stringify(seen))
      await locks.releaseLock({ redisKey: k, value: 'w1' })
    })

    it('a lock taken by the original is refused to the package (423), read and released by it', async () => {
      const k = key()
      const v = await orig.lockKey({ redisKey: k })
      await assert.rejects(locks.lockKey({ redisKey: k }), { message: 'resource_locked', code: 423 })
      await assert.rejects(locks.acquire(k, { wait: 0 }), { code: 423 })
      assert.equal(await locks.getLock({ redisKey: k }), v)
      await assert.rejects(locks.releaseLock({ redisKey: k, value: 'not-v' }), { message: 'releaseLock_valueMismatch' })
      await locks.releaseLock({ redisKey: k, value: v })
      assert.equal(await raw.exists(k), 0)
    })

    it('a lock taken by the package is refused to the original, read and released by it', async () => {
      const k = key()
      const v = await locks.lockKey({ redisKey: k })
      await assert.rejects(orig.lockKey({ redisKey: k }), { code: 423 })
      assert.equal(await orig.getLock({ redisKey: k }), v)
      await orig.releaseLock({ redisKey: k, value: v })
      assert.equal(await locks.lockKey({ redisKey: k, value: 'next' }), 'next')
    })

    it('a lease is refused to the original; a waiting lease takes over after the original\'s DEL', async () => {
      const k = key()
      const lease = await locks.acquire(k, { ttl: 5000 })
      await assert.rejects(orig.lockKey({ redisKey: k }), { code: 423 })
      assert.equal(await orig.getLock({ redisKey: k }), lease.value)
      await lease.release()
      const v = await orig.lockKey({ redisKey: k, expires: 5 })
      const waiting = locks.acquire(k, { wait: 5000 })
      await sleep(100)
      await orig.releaseLock({ redisKey: k, value: v }) // GET + DEL: no wake-up, the backoff finds it
      const next = await waiting
      assert.equal(await raw.get(k), next.value)
      await next.release()
    })
  })

  describe('with the Rust crate (the redislock CLI)', () => {
    it('held by Rust: the package gets 423, reads the value, and gets it once Rust releases', async () => {
      const k = key()
      const taken = redislock(server.url, 'lock', k, '--ttl', '10s')
      assert.equal(taken.status, 0, taken.stderr)
      const token = taken.stdout
      await assert.rejects(locks.lockKey({ redisKey: k }), { message: 'resource_locked', code: 423 })
      await assert.rejects(locks.acquire(k, { wait: 0 }), { code: 423 })
      assert.equal(await locks.getLock({ redisKey: k }), token)
      await assert.rejects(locks.releaseLock({ redisKey: k, value: 'wrong' }), { message: 'releaseLock_valueMismatch' })
      const freed = redislock(server.url, 'release', k, '--value', token)
      assert.equal(freed.status, 0, freed.stderr)
      assert.equal(await locks.lockKey({ redisKey: k, value: 'node' }), 'node')
      await locks.releaseLock({ redisKey: k, value: 'node' })
    })

    it('held by the package: Rust is refused (exit 1), reads it, and takes it after the release', async () => {
      const k = key()
      const v = await locks.lockKey({ redisKey: k, value: 'from-node' })
      const refused = redislock(server.url, 'lock', k, '-q')
      assert.equal(refused.status, 1, `${refused.stdout} ${refused.stderr}`)
      const got = redislock(server.url, 'get', k)
      assert.equal(got.stdout, v)
      const lease = await locks.acquire(key(), { wait: 0 })
      assert.equal(redislock(server.url, 'lock', lease.key, '-q').status, 1, 'a lease is held for Rust too')
      await lease.release()
      await locks.releaseLock({ redisKey: k, value: v })
      const taken = redislock(server.url, 'lock', k, '--ttl', '5s')
      assert.equal(taken.status, 0, taken.stderr)
      assert.equal(redislock(server.url, 'release', k, '--value', taken.stdout).status, 0)
    })

    it('Rust releases a lock the package took with its value, and the other way round', async () => {
      const k = key()
      const v = await locks.lockKey({ redisKey: k })
      assert.equal(redislock(server.url, 'release', k, '--value', v).status, 0)
      assert.equal(await raw.exists(k), 0)
      const token = redislock(server.url, 'lock', k).stdout
      await locks.releaseLock({ redisKey: k, value: token })
      assert.equal(await raw.exists(k), 0)
    })

    it('a lease\'s holder label is what Rust\'s status shows', async () => {
      const k = key()
      const lease = await locks.acquire(k, { holder: 'node-test:4242 report' })
      const status = redislock(server.url, 'status', k, '--json')
      assert.equal(status.status, 0, status.stderr)
      const json = JSON.parse(status.stdout)
      assert.equal(json.holder, 'node-test:4242 report')
      assert.ok(!status.stdout.includes(lease.value), 'status never shows the value')
      await lease.release()
      await assert.rejects(locks.acquire(k, { holder: 42 }), { message: 'acquire_holder_mustBeString' })
      await assert.rejects(locks.acquire(k, { holder: '' }), { message: 'acquire_invalidInput', code: 400 })
    })

    it('a package waiter is handed the lock when Rust releases it', async () => {
      const k = key()
      const token = redislock(server.url, 'lock', k, '--ttl', '10s').stdout
      const waiting = locks.acquire(k, { wait: 5000 })
      await sleep(200)
      assert.equal(redislock(server.url, 'release', k, '--value', token).status, 0)
      const lease = await waiting
      assert.equal(await raw.get(k), lease.value)
      await lease.release()
    })
  })
})
