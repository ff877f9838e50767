'use strict'
// init({ redis }) reads the user's client: ioredis or node-redis, host, port, username,
// password, db, keyPrefix; or takes a URL.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { randomUUID } = require('node:crypto')
const Redis = require('ioredis')
const { createClient } = require('redis')
const redisLock = require('..')
const { startRedis } = require('./support/redis')

const PASSWORD = 's3cret-p@ss/word'
const key = () => `client:${randomUUID()}`

describe('the user\'s Redis client', () => {
  let server, admin

  before(async () => {
    server = await startRedis(['--requirepass', PASSWORD, '--user', 'worker', 'on', '>worker-pw', '~*', '&*', '+@all'])
    admin = new Redis({ port: server.port, host: '127.0.0.1', password: PASSWORD, db: 3 })
  })
  after(async () => {
    admin.disconnect()
    await server.stop()
  })

  it('an ioredis client: its host, port, password and db are used', async () => {
    const client = new Redis({ port: server.port, host: '127.0.0.1', password: PASSWORD, db: 3, lazyConnect: true })
    const locks = redisLock.create()
    await locks.init({ redis: client })
    const k = key()
    const v = await locks.lockKey({ redisKey: k })
    assert.equal(await admin.get(k), v, 'in db 3')
    await locks.close()
  })

  it('an ioredis client with an ACL user, and its keyPrefix', async () => {
    const client = new Redis({ port: server.port, host: '127.0.0.1', username: 'worker', password: 'worker-pw', db: 3, keyPrefix: 'app:', lazyConnect: true })
    const locks = redisLock.create()
    await locks.init({ redis: client })
    const k = key()
    const v = await locks.lockKey({ redisKey: k, value: 'pref' })
    assert.equal(v, 'pref')
    assert.equal(await admin.get(`app:${k}`), 'pref', 'the prefix is on the wire, as with the original on that client')
    assert.equal(await locks.getLock({ redisKey: k }), 'pref')
    await locks.close()
  })

  it('an ioredis client made from a URL', async () => {
    const client = new Redis(`redis://:${encodeURIComponent(PASSWORD)}@127.0.0.1:${server.port}/3`, { lazyConnect: true })
    const locks = redisLock.create()
    await locks.init({ redis: client })
    const k = key()
    const v = await locks.lockKey({ redisKey: k })
    assert.equal(await admin.get(k), v)
    await locks.close()
  })

  it('a node-redis client (options and url forms)', async () => {
    const byOptions = createClient({ socket: { host: '127.0.0.1', port: server.port }, password: PASSWORD, database: 3 })
    const byUrl = createClient({ url: `redis://worker:worker-pw@127.0.0.1:${server.port}/3` })
    for (const client of [byOptions, byUrl]) {
      const locks = redisLock.create()
      await locks.init({ redis: client })
      const k = key()
      const v = await locks.lockKey({ redisKey: k })
      assert.equal(await admin.get(k), v)
      await locks.close()
    }
  })

  it('a URL string', async () => {
    const locks = redisLock.create()
    await locks.init({ redis: `redis://:${encodeURIComponent(PASSWORD)}@127.0.0.1:${server.port}/3` })
    const k = key()
    const v = await locks.lockKey({ redisKey: k })
    assert.equal(await admin.get(k), v)
    await locks.close()
  })

  it('a wrong password is an error that never shows the password', async () => {
    const client = new Redis({ port: server.port, host: '127.0.0.1', password: 'wrong-pw-xyz', lazyConnect: true })
    const locks = redisLock.create()
    const logged = []
    const logger = { error: (...a) => logged.push(a), warn: (...a) => logged.push(a), log () {} }
    const err = await locks.init({ redis: client, logger }).then(() => null, (e) => e)
    assert.ok(err)
    assert.notEqual(err.code, 423)
    const shown = JSON.stringify([err.message, err.reason, err.stack, logged])
    assert.ok(!shown.includes('wrong-pw-xyz'), shown)
    await locks.close().catch(() => {})
  })

  it('an ioredis client on a unix socket, with its password and db', async () => {
    const os = require('node:os')
    const path = require('node:path')
    const fs = require('node:fs')
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'acrl-sock-'))
    const sock = path.join(dir, 'redis.sock')
    const unix = await startRedis(['--unixsocket', sock, '--unixsocketperm', '700', '--requirepass', PASSWORD])
    const client = new Redis({ path: sock, password: PASSWORD, db: 2, lazyConnect: true })
    const locks = redisLock.create()
    await locks.init({ redis: client })
    const k = key()
    const v = await locks.lockKey({ redisKey: k })
    const check = new Redis({ port: unix.port, host: '127.0.0.1', password: PASSWORD, db: 2 })
    assert.equal(await check.get(k), v, 'in db 2, over the socket')
    check.disconnect()
    await locks.close()
    await unix.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it('an ioredis Cluster is refused with a clear error', async () => {
    const cluster = new Redis.Cluster([{ host: '127.0.0.1', port: server.port }], { lazyConnect: true })
    const locks = redisLock.create()
    await assert.rejects(locks.init({ redis: cluster }), { message: 'init_redisClusterNotSupported' })
    cluster.disconnect()
  })
})
