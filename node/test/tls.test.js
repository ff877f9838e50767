'use strict'
// init({ redis }) with a TLS client: the package connects with TLS too, trusting the client's `ca`.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const { randomUUID } = require('node:crypto')
const Redis = require('ioredis')
const { createClient } = require('redis')
const redisLock = require('..')
const { startRedis, makeCerts } = require('./support/redis')

describe('TLS', () => {
  let certs, server, ca, admin

  before(async () => {
    certs = makeCerts()
    server = await startRedis([], { tls: certs })
    ca = fs.readFileSync(certs.ca)
    admin = new Redis({ port: server.port, host: '127.0.0.1', tls: { ca, servername: 'localhost' } })
  })
  after(async () => {
    admin.disconnect()
    await server.stop()
    fs.rmSync(certs.dir, { recursive: true, force: true })
  })

  it('an ioredis client with tls and a ca: the lock is taken over TLS', async () => {
    const client = new Redis({ port: server.port, host: '127.0.0.1', tls: { ca }, lazyConnect: true })
    const locks = redisLock.create()
    await locks.init({ redis: client })
    const k = `tls:${randomUUID()}`
    const v = await locks.lockKey({ redisKey: k })
    assert.equal(await admin.get(k), v)
    await locks.releaseLock({ redisKey: k, value: v })
    assert.equal(await admin.exists(k), 0)
    await locks.close()
  })

  it('a node-redis client with socket.tls and a ca', async () => {
    const client = createClient({ socket: { host: '127.0.0.1', port: server.port, tls: true, ca } })
    const locks = redisLock.create()
    await locks.init({ redis: client })
    const k = `tls:${randomUUID()}`
    const v = await locks.lockKey({ redisKey: k })
    assert.equal(await admin.get(k), v)
    await locks.close()
  })

  it('rejectUnauthorized: false is refused (the addon always verifies), with a clear error', async () => {
    const client = new Redis({ port: server.port, host: '127.0.0.1', tls: { rejectUnauthorized: false }, lazyConnect: true })
    const locks = redisLock.create()
    await assert.rejects(locks.init({ redis: client }), { message: 'init_tlsRejectUnauthorizedNotSupported' })
  })

  it('a server certificate nobody trusts is an error, never a lock, and never plaintext', async () => {
    const client = new Redis({ port: server.port, host: '127.0.0.1', tls: {}, lazyConnect: true })
    const locks = redisLock.create()
    const logger = { error () {}, warn () {}, log () {} }
    const err = await locks.init({ redis: client, logger }).then(() => null, (e) => e)
    assert.ok(err, 'an untrusted certificate was accepted')
    assert.notEqual(err.code, 423)
    await assert.rejects(locks.lockKey({ redisKey: 'tls:x' }), (e) => e.code !== 423)
    await locks.close().catch(() => {})
  })
})
